#!/usr/bin/env python3
"""Writes the fuzz seeds into seeds/<target>/ from the repository's own
specifications: the answers in the fake server's snapshots, the example
answers of the official OpenAPI files and the HoopAI page, the consent
redirects, and the grant records of the record snapshot.

Run from anywhere: python3 fuzz/write_seeds.py. The seeds are committed;
run it again when the snapshots or the spec files change.
"""
import hashlib
import json
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = ROOT / "snapshots"
SPEC = ROOT / "tests" / "data" / "spec"
OUT = ROOT / "fuzz" / "seeds"

RESPONSE_TARGETS = ["token_response", "location_token_response", "installed_locations"]
seeds = {t: set() for t in RESPONSE_TARGETS + ["callback", "grant_record"]}


def snapshot_text(path):
    """The snapshot's content, without insta's header."""
    text = path.read_text()
    if text.startswith("---\n"):
        text = text.split("\n---\n", 1)[1]
    return text


def sections(text):
    """`# name` sections of a snapshot, or the whole text."""
    parts = re.split(r"^# .*\n", text, flags=re.M)
    return [p for p in parts if p.strip()]


def answer(status, headers, body):
    head = "".join(f"{k}: {v}\n" for k, v in headers)
    return f"HTTP {status}\n{head}\n{body}"


def answers_in(text):
    """Each answer written as `HTTP nnn`, headers, empty line, body; or a bare
    JSON body whose status comes from its `statusCode` (400 without one)."""
    for part in sections(text):
        lines = part.strip("\n").split("\n")
        m = re.match(r"HTTP (\d{3})", lines[0])
        if m:
            status, rest = int(m.group(1)), lines[1:]
        else:
            status, rest = None, lines
        headers = []
        while rest and re.match(r"^[A-Za-z0-9-]+: ", rest[0]):
            k, v = rest.pop(0).split(": ", 1)
            headers.append((k, v))
        body = "\n".join(l for l in rest if l.strip() or rest).strip("\n")
        if status is None:
            try:
                status = int(json.loads(body).get("statusCode", 400))
            except (ValueError, AttributeError):
                status = 400
        yield status, headers, body


def target_of(name):
    if "location_token" in name:
        return ["location_token_response"]
    if "installed_locations" in name:
        return ["installed_locations"]
    if "consent" in name or "unknown_path" in name:
        return []
    if "fault" in name:
        return RESPONSE_TARGETS  # faults answer any endpoint
    return ["token_response"]


# 1. The fake server's answers (the real server's shapes).
for path in sorted(SNAPSHOTS.glob("fake_server__*.snap")):
    name = path.stem.split("__", 1)[1]
    for status, headers, body in answers_in(snapshot_text(path)):
        for target in target_of(name):
            seeds[target].add(answer(status, headers, body))
        for k, v in headers:
            if k.lower() == "location":
                seeds["callback"].add("\n" + v)
                state = re.search(r"[?&]state=([^&#]*)", v)
                if state:
                    from urllib.parse import unquote_plus
                    seeds["callback"].add(unquote_plus(state.group(1)) + "\n" + v)


# 2. The official OpenAPI examples: each response assembled from the
#    `example` of its schema's properties.
def resolve(ref, doc, common):
    file, _, pointer = ref.partition("#")
    node = common if file else doc
    for key in pointer.strip("/").split("/"):
        node = node[key]
    return node, (common if file else doc)


def example(schema, doc, common, depth=0):
    if depth > 8:
        return None
    if "$ref" in schema:
        target, where = resolve(schema["$ref"], doc, common)
        return example(target, where, common, depth + 1)
    if "example" in schema:
        return schema["example"]
    for combo in ("allOf", "oneOf", "anyOf"):
        if combo in schema:
            merged = {}
            for part in schema[combo]:
                value = example(part, doc, common, depth + 1)
                if isinstance(value, dict):
                    merged.update(value)
                elif value is not None and combo != "allOf":
                    return value
            return merged
    if schema.get("type") == "object" or "properties" in schema:
        out = {}
        for key, prop in schema.get("properties", {}).items():
            value = example(prop, doc, common, depth + 1)
            if value is not None:
                out[key] = value
        return out
    if schema.get("type") == "array" and "items" in schema:
        item = example(schema["items"], doc, common, depth + 1)
        return [] if item is None else [item]
    return None


for version in ("v2", "v3"):
    doc = json.loads((SPEC / f"highlevel-oauth-{version}.openapi.json").read_text())
    common = json.loads((SPEC / f"highlevel-common-schemas-{version}.json").read_text())
    for path, operations in doc["paths"].items():
        target = ("location_token_response" if "ocation" in path and "oken" in path
                  else "installed_locations" if "nstalled" in path else "token_response")
        for operation in operations.values():
            for status, resp in operation.get("responses", {}).items():
                for media in resp.get("content", {}).values():
                    bodies = [e.get("value") for e in media.get("examples", {}).values()]
                    if "schema" in media:
                        bodies.append(example(media["schema"], doc, common))
                    for body in bodies:
                        if body is not None:
                            seeds[target].add(answer(int(status), [("content-type", "application/json")],
                                                     json.dumps(body)))

# 3. The HoopAI page's example answer.
page = (SPEC / "hoopai-get-access-token.txt").read_text()
start = page.index("\n{") + 1
end = page.index("\n}", start) + 2
seeds["token_response"].add(answer(200, [], page[start:end]))

# 4. Consent URLs from the consent snapshots, as redirects to read back.
for path in sorted(SNAPSHOTS.glob("consent__*.snap")):
    for url in re.findall(r"^https?://\S+\?\S+$", snapshot_text(path), flags=re.M):
        seeds["callback"].add("\n" + url)

# A few redirect shapes the snapshots lack: a bare query, a path, a
# fragment, a repeated parameter, percent-encoding, an error redirect.
seeds["callback"].update([
    "s-1\n?code=cd-000000000001-0123456789abcdef&state=s-1",
    "s-1\n/oauth/callback?state=s-1&code=abc%2Fdef%3D#frag",
    "\ncode=one&code=two",
    "s-1\nhttps://myapp.com/cb?error=access_denied&error_description=The+user+denied+access&state=s-1",
    "s-1\nhttps://myapp.com/cb?code=&state=s-1",
    "\nhttps://user@[::1]:8910/cb?code=%E2%82%AC",
])

# 5. Grant records, one per state of the record snapshot.
for part in sections(snapshot_text(SNAPSHOTS / "engine_record__record_json_for_each_state.snap")):
    body = part.strip()
    if body.startswith("{"):
        seeds["grant_record"].add(body)

if OUT.exists():
    shutil.rmtree(OUT)
for target, items in seeds.items():
    folder = OUT / target
    folder.mkdir(parents=True)
    for item in sorted(items):
        data = item.encode()
        (folder / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)
    print(f"{target}: {len(items)} seeds")
