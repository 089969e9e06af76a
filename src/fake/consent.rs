//! `GET …/oauth/chooselocation`: the consent page, approved at once.

use http::{Request, StatusCode};

use super::FakeServer;
use super::wire::{Param, Params, Reply};
use crate::config::check_redirect_uri;

impl FakeServer {
    /// Approves the consent install and redirects to the redirect URI with a
    /// code, or with `error` / `error_description` when the request is wrong.
    /// Without a usable redirect URI there is nowhere to redirect: `400`.
    pub(super) fn consent_page<B>(&mut self, req: &Request<B>) -> Reply {
        let Some(params) = Params::query(req) else {
            return Reply::invalid("query");
        };
        let redirect_uri = match params.get("redirect_uri") {
            Param::One(uri) if check_redirect_uri(uri).is_ok() => uri,
            Param::Absent => return Reply::missing("redirect_uri"),
            _ => return Reply::invalid("redirect_uri"),
        };
        let state = match params.get("state") {
            Param::One(s) => Some(s),
            Param::Absent => None,
            Param::Repeated => {
                return error_redirect(redirect_uri, None, "state is repeated");
            }
        };
        match params.get("client_id") {
            Param::One(id) if id == self.client_id => {}
            Param::Absent => return error_redirect(redirect_uri, state, "client_id is missing"),
            _ => return error_redirect(redirect_uri, state, "client_id is invalid"),
        }
        match params.get("response_type") {
            Param::One("code") => {}
            _ => return error_redirect(redirect_uri, state, "response_type must be code"),
        }
        let mut install = self.consent_install.clone();
        match params.get("scope") {
            Param::One(scope) => scope.clone_into(&mut install.scope),
            Param::Absent => {}
            Param::Repeated => return error_redirect(redirect_uri, state, "scope is repeated"),
        }
        let code = self.approve_for(install, Some(redirect_uri.to_owned()));
        let mut query = vec![("code", code.as_str())];
        query.extend(state.map(|s| ("state", s)));
        redirect(redirect_uri, &query)
    }
}

fn error_redirect(redirect_uri: &str, state: Option<&str>, description: &str) -> Reply {
    let mut query = vec![
        ("error", "invalid_request"),
        ("error_description", description),
    ];
    query.extend(state.map(|s| ("state", s)));
    redirect(redirect_uri, &query)
}

/// `302` to `redirect_uri` with `query` appended to its own query, if any.
/// A `Location` that is not a plain ASCII header value is never sent
/// without the header: the answer is `400 Invalid parameter: redirect_uri`
/// instead (the URI rules of the crate's config keep this from happening).
fn redirect(redirect_uri: &str, query: &[(&str, &str)]) -> Reply {
    let Ok(encoded) = serde_urlencoded::to_string(query) else {
        return Reply::nest(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
    };
    let (base, fragment) = redirect_uri
        .split_once('#')
        .map_or((redirect_uri, None), |(b, f)| (b, Some(f)));
    let separator = if base.contains('?') { '&' } else { '?' };
    let mut location = format!("{base}{separator}{encoded}");
    if let Some(f) = fragment {
        location.push('#');
        location.push_str(f);
    }
    if !location.bytes().all(|b| b.is_ascii_graphic()) {
        return Reply::invalid("redirect_uri");
    }
    Reply::redirect(location)
}
