//! The functions and classes JavaScript calls, through wasm-bindgen. They
//! copy values between JavaScript and the crate; no I/O, no clock, no
//! randomness (the caller passes `Date.now()` and bytes from
//! `crypto.getRandomValues`).
//!
//! - [`client`]: `OAuthClient` (configuration, token requests, consent URL,
//!   Location tokens, installed locations) and the answer parsers;
//! - [`engine`]: `Engine`, the token lifecycle engine;
//! - [`webhook`]: `WebhookVerifier`, `SeenWebhooks`, `WebhookEvent`.

// The token-only build uses some of the helpers only.
#![cfg_attr(not(feature = "full"), allow(dead_code))]

use std::time::SystemTime;

use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::shape::{self, Failure, Secret, Shape, Value};

pub mod client;
#[cfg(feature = "full")]
pub mod engine;
#[cfg(feature = "full")]
pub mod install;
#[cfg(feature = "full")]
pub mod webhook;

/// A string argument; anything else (`undefined`, a number…) is refused
/// rather than converted, so that no `"undefined"` is ever sent as a token.
pub(crate) fn text(value: &JsValue, name: &str) -> Result<String, JsValue> {
    value
        .as_string()
        .ok_or_else(|| throw(&Failure::Input(format!("{name} must be a string"))))
}

/// An optional string argument: `undefined` and `null` are none.
pub(crate) fn optional_text(value: &JsValue, name: &str) -> Result<Option<String>, JsValue> {
    if value.is_undefined() || value.is_null() {
        Ok(None)
    } else {
        text(value, name).map(Some)
    }
}

/// A time argument: milliseconds since the Unix epoch (`Date.now()`).
pub(crate) fn time(ms: f64) -> Result<SystemTime, JsValue> {
    shape::instant(ms).map_err(|f| throw(&f))
}

/// An `invalid input` error thrown to JavaScript.
pub(crate) fn input_error(why: impl Into<String>) -> JsValue {
    throw(&Failure::Input(why.into()))
}

/// The crate's error, thrown to JavaScript.
pub(crate) fn oauth_error(e: hoopai_oauth::Error) -> JsValue {
    throw(&Failure::OAuth(e))
}

/// A property of an object (`undefined` when absent or not an object).
pub(crate) fn get(obj: &JsValue, name: &str) -> JsValue {
    if !obj.is_object() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(obj, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// The own enumerable keys of an options object, checked against the known
/// ones: a misspelt option is an error, not a silent default.
pub(crate) fn check_keys(obj: &JsValue, known: &[&str], what: &str) -> Result<(), JsValue> {
    if obj.is_undefined() || obj.is_null() {
        return Ok(());
    }
    if !obj.is_object() {
        return Err(input_error(format!("{what} must be an object")));
    }
    for key in Object::keys(obj.unchecked_ref::<Object>()).iter() {
        let key = key.as_string().unwrap_or_default();
        if !known.contains(&key.as_str()) {
            return Err(input_error(format!(
                "{what} has no option {key:?}; known: {}",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

/// An optional number option: `undefined` is none; anything but a finite
/// number is refused.
pub(crate) fn optional_number(value: &JsValue, name: &str) -> Result<Option<f64>, JsValue> {
    if value.is_undefined() {
        return Ok(None);
    }
    match value.as_f64() {
        Some(n) if n.is_finite() => Ok(Some(n)),
        _ => Err(input_error(format!("{name} must be a finite number"))),
    }
}

/// A whole, non-negative number no larger than `max`.
pub(crate) fn whole_number(value: f64, name: &str, max: u64) -> Result<u64, JsValue> {
    // `max` is at most 2^53 - 1 wherever this is called, so the comparison is exact.
    #[allow(clippy::cast_precision_loss)]
    let top = max as f64;
    if value.fract() != 0.0 || !(0.0..=top).contains(&value) {
        return Err(input_error(format!(
            "{name} must be a whole number from 0 to {max}, not {}",
            shape::number_text(value)
        )));
    }
    // Whole and in range.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = value as u64;
    Ok(n)
}

/// An optional boolean option.
pub(crate) fn optional_bool(value: &JsValue, name: &str) -> Result<Option<bool>, JsValue> {
    if value.is_undefined() {
        return Ok(None);
    }
    value
        .as_bool()
        .map(Some)
        .ok_or_else(|| input_error(format!("{name} must be true or false")))
}

/// Bytes from a `Uint8Array` (or an `ArrayBuffer`); anything else is refused.
pub(crate) fn bytes(value: &JsValue, name: &str) -> Result<Vec<u8>, JsValue> {
    if let Some(array) = value.dyn_ref::<Uint8Array>() {
        return Ok(array.to_vec());
    }
    if let Some(buffer) = value.dyn_ref::<js_sys::ArrayBuffer>() {
        return Ok(Uint8Array::new(buffer).to_vec());
    }
    Err(input_error(format!(
        "{name} must be a Uint8Array or an ArrayBuffer"
    )))
}

/// Reads header pairs from a `Headers`, a `Map`, an array of pairs, or a
/// plain object; `undefined` and `null` are no headers.
pub(crate) fn header_pairs(headers: &JsValue) -> Result<Vec<(String, String)>, Failure> {
    let bad = || {
        Failure::Input(
            "headers must be a Headers, a Map, an array of [name, value] string pairs or an object of strings"
                .to_owned(),
        )
    };
    if headers.is_undefined() || headers.is_null() {
        return Ok(Vec::new());
    }
    let pairs: Vec<JsValue> = match js_sys::try_iter(headers).map_err(|_| bad())? {
        Some(iter) => iter.collect::<Result<_, _>>().map_err(|_| bad())?,
        None if headers.is_object() => Object::entries(headers.unchecked_ref()).to_vec(),
        None => return Err(bad()),
    };
    pairs
        .into_iter()
        .map(|pair| {
            let pair: Array = pair.dyn_into().map_err(|_| bad())?;
            match (
                pair.length(),
                pair.get(0).as_string(),
                pair.get(1).as_string(),
            ) {
                (2, Some(name), Some(value)) => Ok((name, value)),
                _ => Err(bad()),
            }
        })
        .collect()
}

/// The HTTP answer from what `fetch` gave: status, headers and body bytes.
pub(crate) fn fetched(
    status: f64,
    headers: &JsValue,
    body: Vec<u8>,
) -> Result<http::Response<Vec<u8>>, JsValue> {
    header_pairs(headers)
        .and_then(|pairs| shape::response(status, pairs, body))
        .map_err(|f| throw(&f))
}

/// A JavaScript object of a shape: shown fields enumerable, secrets not.
pub(crate) fn object(shape: &Shape<'_>) -> Result<Object, JsValue> {
    let obj = Object::new();
    fill(&obj, shape)?;
    Ok(obj)
}

/// A JavaScript value of a shape's value.
fn value(v: &Value<'_>) -> Result<JsValue, JsValue> {
    Ok(match v {
        Value::Text(s) => s.into(),
        Value::Number(n) => (*n).into(),
        Value::Bool(b) => (*b).into(),
        Value::List(items) => items
            .iter()
            .map(|s| JsValue::from_str(s))
            .collect::<Array>()
            .into(),
        Value::Pairs(pairs) => pairs
            .iter()
            .map(|(n, v)| {
                let pair = Array::new();
                pair.push(&JsValue::from_str(n));
                pair.push(&JsValue::from_str(v));
                JsValue::from(pair)
            })
            .collect::<Array>()
            .into(),
        Value::Null => JsValue::NULL,
        Value::Json(json) => js_sys::JSON::parse(json)?,
        Value::Object(shape) => object(shape)?.into(),
        Value::Objects(shapes) => {
            let list = Array::new();
            for shape in shapes {
                list.push(&JsValue::from(object(shape)?));
            }
            list.into()
        }
    })
}

fn fill(obj: &Object, shape: &Shape<'_>) -> Result<(), JsValue> {
    for (name, v) in &shape.shown {
        set(obj, name, &value(v)?)?;
    }
    for (name, secret) in &shape.secrets {
        let v: JsValue = match secret {
            Secret::Text(s) => JsValue::from_str(s),
            Secret::Owned(s) => JsValue::from_str(s),
            Secret::Bytes(b) => Uint8Array::from(*b).into(),
            Secret::Pairs(pairs) => value(&Value::Pairs(pairs.clone()))?,
        };
        hide(obj, name, &v)?;
    }
    Ok(())
}

/// The JavaScript `Error` thrown for a failure, named `OAuthError`.
pub(crate) fn throw(failure: &Failure) -> JsValue {
    let error = js_sys::Error::new(&failure.message());
    error.set_name("OAuthError");
    match fill(&error, &failure.shape()) {
        Ok(()) => error.into(),
        Err(e) => e,
    }
}

pub(crate) fn set(obj: &Object, name: &str, value: &JsValue) -> Result<(), JsValue> {
    Reflect::set(obj, &JsValue::from_str(name), value).map(drop)
}

/// Defines a read-only, non-enumerable property: read by name, never printed.
pub(crate) fn hide(obj: &Object, name: &str, value: &JsValue) -> Result<(), JsValue> {
    let descriptor = Object::new();
    set(&descriptor, "value", value)?;
    set(&descriptor, "enumerable", &JsValue::FALSE)?;
    set(&descriptor, "writable", &JsValue::FALSE)?;
    Object::define_property(obj, &JsValue::from_str(name), &descriptor);
    Ok(())
}
