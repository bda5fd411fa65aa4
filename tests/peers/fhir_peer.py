#!/usr/bin/env python3
"""A FHIR server test peer: the hospital's FHIR endpoint that Relais' FHIR sink files documents
on, in another process and another FHIR implementation than Relais.

It listens on 127.0.0.1 (plain HTTP, or HTTPS with --tls-cert/--tls-key, requiring a client
certificate issued by --client-ca when given) and serves one interaction: the transaction,
POST [base] with a Bundle. Every posted bundle is parsed strictly by the pydantic models of
fhir.resources (R4B models, whose Bundle, Patient, Binary, DocumentReference, Identifier,
Reference and Attachment have the same elements as R4 4.0.1: unknown elements, wrong types and
missing required elements are refused), then checked for what the models leave out but a
transaction server relies on:

  - Bundle.type is "transaction"; every entry has a fullUrl, a resource and a request whose
    method is POST or PUT and whose url names the resource's type; fullUrls are unique;
  - required codes: DocumentReference.status, Identifier.use, relatesTo.code;
  - every "urn:uuid:" reference points to an entry of the bundle;
  - Binary.data is base64 and Attachment.size/hash (when given) match the Binary they point to.

A bundle that fails is answered 400 with an OperationOutcome (issue code "structure" or
"invalid", the pydantic location as expression) and nothing is stored.

Transaction processing follows FHIR R4 (http.html#trules): conditional creates
(request.ifNoneExist, search on "identifier=[system]|[value]", which for DocumentReference covers
masterIdentifier as in R4) answer "200 OK" with the existing resource when exactly one matches,
412 when several do; otherwise the resource is created ("201 Created") with a new id; references
to fullUrls (Reference.reference, Attachment.url) are rewritten to the server ids; the answer is a
transaction-response Bundle, itself validated by the models, with the entries in request order.
Resources live in memory for the life of the process.

Authentication: with --token, a request without "Authorization: Bearer <token>" gets 401 (and
WWW-Authenticate), a wrong token too.

The mode file (read at every request; missing or empty means OK) makes the server misbehave:

  OK              process normally
  400 | 401 | 403 | 404 | 409 | 412 | 422 | 429 | 500 | 502 | 503   answer that status with an
                  OperationOutcome, without processing (503 and 429 send Retry-After: 1)
  SLOW <seconds>  wait, then process normally
  GARBAGE         answer 200 with an HTML page
  HUGE            answer 200 with a 2 MiB JSON body (over what a client should read)
  DROP            close the connection without answering

Every POST is recorded as one JSON file in --record DIR (NNNNNN.json, written before the answer
is sent, renamed into place so a reader never sees half a file): the status answered, whether
authentication passed, the client certificate's subject when TLS asked for one, the bundle as
posted (when it was JSON), the per-entry outcome (resourceType, status, location, created) and the
error when refused.

The peer prints "LISTENING <port>" on stdout once bound (use --port 0 for a free port) and stops
by itself after --max-seconds.

Install: python3 -m pip install fhir.resources==8.3.0  (pydantic 2; bash tests/setup.sh does it)
"""

import argparse
import base64
import binascii
import hashlib
import json
import os
import re
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from fhir.resources.R4B.bundle import Bundle
except ImportError as exc:  # pragma: no cover - reported to the Rust test as is
    sys.stderr.write(
        "fhir_peer: fhir.resources is not installed (%s); install it with: "
        "python3 -m pip install fhir.resources==8.3.0\n" % exc
    )
    sys.exit(3)

FHIR_JSON = "application/fhir+json"
MAX_BODY = 200 * 1024 * 1024
UUID_URN = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
REQUIRED_CODES = {
    ("DocumentReference", "status"): {"current", "superseded", "entered-in-error"},
}
IDENTIFIER_USES = {"usual", "official", "temp", "secondary", "old"}
RELATES_TO_CODES = {"replaces", "transforms", "signs", "appends"}
REASONS = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    409: "Conflict", 412: "Precondition Failed", 415: "Unsupported Media Type",
    422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable",
}


class Refused(Exception):
    """The transaction is refused as a whole: status, issue code, diagnostics, expression."""

    def __init__(self, status, code, diagnostics, expression=None):
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.expression = expression


def operation_outcome(code, diagnostics, expression=None, severity="error"):
    issue = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


class Store:
    """The server's resources, in memory: {type: {id: resource}}."""

    def __init__(self):
        self.lock = threading.Lock()
        self.resources = {}
        self.counter = 0

    def search_identifier(self, rtype, query):
        """Resources of rtype matching an ifNoneExist query (identifier=[system]|[value] only)."""
        params = urllib.parse.parse_qs(query, keep_blank_values=True, strict_parsing=True)
        if set(params) != {"identifier"} or len(params["identifier"]) != 1:
            raise Refused(400, "not-supported",
                          "ifNoneExist: only identifier=[system]|[value] is supported", "Bundle.entry.request.ifNoneExist")
        system, value = split_token(params["identifier"][0])
        found = []
        for rid, res in self.resources.get(rtype, {}).items():
            ids = list(res.get("identifier", []))
            if rtype == "DocumentReference" and "masterIdentifier" in res:
                ids.append(res["masterIdentifier"])
            for ident in ids:
                if ident.get("value") == value and (system is None or ident.get("system") == system):
                    found.append(rid)
                    break
        return found

    def new_id(self):
        self.counter += 1
        return "%d" % self.counter


def split_token(token):
    """[system]|[value] with FHIR search escaping (backslash before \\ | , $)."""
    parts, cur, i = [], "", 0
    while i < len(token):
        c = token[i]
        if c == "\\" and i + 1 < len(token):
            cur += token[i + 1]
            i += 2
            continue
        if c == "|":
            parts.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    parts.append(cur)
    if len(parts) == 1:
        return None, parts[0]
    if len(parts) != 2:
        raise Refused(400, "invalid", "ifNoneExist: malformed token search value")
    return parts[0], parts[1]


def validate(raw):
    """Strict R4 checks of a posted bundle; returns it as a dict or raises Refused."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(400, "structure", "the body is not JSON: %s" % exc)
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise Refused(400, "structure", "a transaction is a Bundle")
    try:
        Bundle.model_validate(data)
    except Exception as exc:  # pydantic.ValidationError, or a lookup error for unknown types
        errors = getattr(exc, "errors", None)
        if callable(errors):
            first = errors()[0]
            loc = "Bundle." + ".".join(str(p) for p in first.get("loc", ()))
            raise Refused(400, "structure", "%s: %s" % (loc, first.get("msg")), loc)
        raise Refused(400, "structure", "not a valid R4 Bundle: %r" % (exc,))
    if data.get("type") != "transaction":
        raise Refused(400, "invalid", "Bundle.type must be transaction for POST [base]", "Bundle.type")
    entries = data.get("entry") or []
    full_urls = set()
    binaries = {}
    for i, e in enumerate(entries):
        where = "Bundle.entry[%d]" % i
        res, req, full = e.get("resource"), e.get("request"), e.get("fullUrl")
        if not res or not req or not full:
            raise Refused(400, "required", "a transaction entry needs fullUrl, resource and request", where)
        if full in full_urls:
            raise Refused(400, "invalid", "duplicate fullUrl", where + ".fullUrl")
        full_urls.add(full)
        if req.get("method") not in ("POST", "PUT"):
            raise Refused(400, "not-supported", "only POST and PUT entries are supported", where + ".request.method")
        rtype = res["resourceType"]
        url_parts = req.get("url", "").split("?")[0].split("/")
        if url_parts[0] != rtype or len(url_parts) != (2 if req["method"] == "PUT" else 1):
            raise Refused(400, "invalid", "request.url must be [type] for POST, [type]/[id] for PUT",
                          where + ".request.url")
        for (t, field), allowed in REQUIRED_CODES.items():
            if t == rtype and res.get(field) not in allowed:
                raise Refused(400, "code-invalid", "%s.%s is not a code of its required value set" % (t, field),
                              "%s.resource.%s" % (where, field))
        for j, ident in enumerate(res.get("identifier", [])):
            if "use" in ident and ident["use"] not in IDENTIFIER_USES:
                raise Refused(400, "code-invalid", "Identifier.use", "%s.resource.identifier[%d].use" % (where, j))
        for j, rel in enumerate(res.get("relatesTo", [])):
            if rel.get("code") not in RELATES_TO_CODES:
                raise Refused(400, "code-invalid", "relatesTo.code", "%s.resource.relatesTo[%d].code" % (where, j))
        if rtype == "Binary":
            try:
                binaries[full] = base64.b64decode(res.get("data", ""), validate=True)
            except (binascii.Error, ValueError):
                raise Refused(400, "invalid", "Binary.data is not base64", where + ".resource.data")
    for i, e in enumerate(entries):
        for ref in references(e["resource"]):
            if ref.startswith("urn:uuid:") and ref not in full_urls:
                raise Refused(400, "not-found", "reference to an entry that is not in the bundle",
                              "Bundle.entry[%d]" % i)
        for j, content in enumerate(e["resource"].get("content", []) if e["resource"]["resourceType"] == "DocumentReference" else []):
            att = content.get("attachment", {})
            blob = binaries.get(att.get("url"))
            if blob is None:
                continue
            if "size" in att and att["size"] != len(blob):
                raise Refused(400, "invalid", "Attachment.size differs from the Binary",
                              "Bundle.entry[%d].resource.content[%d].attachment.size" % (i, j))
            if "hash" in att and att["hash"] != base64.b64encode(hashlib.sha1(blob).digest()).decode():
                raise Refused(400, "invalid", "Attachment.hash differs from the Binary",
                              "Bundle.entry[%d].resource.content[%d].attachment.hash" % (i, j))
    return data


def references(node):
    """Every Reference.reference and Attachment.url value inside a resource."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("reference", "url") and isinstance(v, str):
                out.append(v)
            else:
                out.extend(references(v))
    elif isinstance(node, list):
        for v in node:
            out.extend(references(v))
    return out


def rewrite(node, mapping):
    """Replaces fullUrls by server ids in references (FHIR R4 transaction rules)."""
    if isinstance(node, dict):
        return {k: (mapping.get(v, v) if k in ("reference", "url") and isinstance(v, str) else rewrite(v, mapping))
                for k, v in node.items()}
    if isinstance(node, list):
        return [rewrite(v, mapping) for v in node]
    return node


def process(store, bundle):
    """Runs the transaction atomically; returns the transaction-response and entry outcomes."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with store.lock:
        mapping, plan = {}, []
        # Resolve the conditional creates first, then assign ids, then store (all or nothing).
        for e in bundle["entry"]:
            res, req = e["resource"], e["request"]
            rtype = res["resourceType"]
            if req["method"] == "POST" and req.get("ifNoneExist"):
                found = store.search_identifier(rtype, req["ifNoneExist"])
                if len(found) > 1:
                    raise Refused(412, "multiple-matches", "ifNoneExist matches several resources")
                if found:
                    mapping[e["fullUrl"]] = "%s/%s" % (rtype, found[0])
                    plan.append((e, found[0], False))
                    continue
            rid = req["url"].split("/")[1] if req["method"] == "PUT" else store.new_id()
            mapping[e["fullUrl"]] = "%s/%s" % (rtype, rid)
            plan.append((e, rid, True))
        outcomes, response_entries = [], []
        for e, rid, created in plan:
            rtype = e["resource"]["resourceType"]
            if created:
                res = rewrite(e["resource"], mapping)
                res["id"] = rid
                res["meta"] = {"versionId": "1", "lastUpdated": now}
                store.resources.setdefault(rtype, {})[rid] = res
            status = "201 Created" if created else "200 OK"
            location = "%s/%s/_history/1" % (rtype, rid)
            outcomes.append({"resourceType": rtype, "status": status, "location": location, "created": created})
            response_entries.append({"response": {"status": status, "location": location,
                                                  "etag": 'W/"1"', "lastModified": now}})
    response = {"resourceType": "Bundle", "type": "transaction-response", "entry": response_entries}
    Bundle.model_validate(response)
    return response, outcomes


class Recorder:
    def __init__(self, directory):
        self.dir = directory
        self.lock = threading.Lock()
        self.seq = 0
        os.makedirs(directory, exist_ok=True)

    def write(self, record):
        with self.lock:
            self.seq += 1
            record["seq"] = self.seq
            path = os.path.join(self.dir, "%06d.json" % self.seq)
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                json.dump(record, f)
            os.rename(path + ".tmp", path)


def make_handler(args, store, recorder):
    base = "/" + args.base_path.strip("/")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "RelaisFhirPeer/1"

        def log_message(self, fmt, *a):  # quiet: the record files say what happened
            pass

        def mode(self):
            try:
                with open(args.mode_file, encoding="utf-8") as f:
                    return f.read().strip() or "OK"
            except OSError:
                return "OK"

        def send(self, status, body, content_type=FHIR_JSON, headers=()):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status, REASONS.get(status))
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def client_subject(self):
            getpeercert = getattr(self.connection, "getpeercert", None)
            cert = getpeercert() if getpeercert else None
            if not cert:
                return None
            return ",".join("%s=%s" % kv for rdn in cert.get("subject", ()) for kv in rdn)

        def do_GET(self):
            if self.path.rstrip("/") == base + "/metadata":
                self.send(200, {"resourceType": "CapabilityStatement", "status": "active",
                                "date": "2024-01-01", "kind": "instance", "fhirVersion": "4.0.1",
                                "format": ["json"]})
            else:
                self.send(404, operation_outcome("not-supported", "only the transaction is served"))

        def do_POST(self):
            record = {"path": self.path, "client_cert": self.client_subject(), "auth": "none"}
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send(413, operation_outcome("too-costly", "body too large"))
                return
            raw = self.rfile.read(length)
            record["request_id"] = self.headers.get("X-Request-Id")
            record["prefer"] = self.headers.get("Prefer")
            status, body, headers = self.answer(raw, record)
            record["status"] = status
            if status is not None:
                recorder.write(record)
                if isinstance(body, bytes):
                    self.send(status, body, content_type="text/html", headers=headers)
                else:
                    self.send(status, body, headers=headers)
            else:
                recorder.write(record)
                self.close_connection = True
                self.connection.shutdown(2)

        def answer(self, raw, record):
            try:
                record["bundle"] = json.loads(raw)
            except ValueError:
                record["bundle"] = None
            if self.path.split("?")[0].rstrip("/") != base:
                record["error"] = "not the FHIR base"
                return 404, operation_outcome("not-found", "POST the transaction to %s" % base), ()
            if args.token is not None:
                if self.headers.get("Authorization") != "Bearer " + args.token:
                    record["auth"] = "refused"
                    record["error"] = "bearer token missing or wrong"
                    return 401, operation_outcome("login", "bearer token missing or wrong"), (
                        ("WWW-Authenticate", 'Bearer error="invalid_token"'),)
                record["auth"] = "bearer"
            mode = self.mode()
            words = mode.split()
            if words[0].isdigit():
                code = int(words[0])
                record["error"] = "mode %s" % mode
                headers = (("Retry-After", "1"),) if code in (429, 503) else ()
                issue = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found",
                         409: "conflict", 412: "multiple-matches", 422: "business-rule",
                         429: "throttled", 500: "exception", 502: "transient", 503: "transient"}
                return code, operation_outcome(issue.get(code, "exception"), "peer mode %s" % mode,
                                               "Bundle.entry[0]"), headers
            if words[0] == "GARBAGE":
                return 200, b"<html><body>It works!</body></html>", ()
            if words[0] == "HUGE":
                filler = b'"' + b"x" * (2 * 1024 * 1024) + b'"'
                return 200, b'{"resourceType": "Bundle", "type": "transaction-response", "x": ' \
                    + filler + b"}", ()
            if words[0] == "DROP":
                return None, None, ()
            if words[0] == "SLOW":
                time.sleep(float(words[1]) if len(words) > 1 else 30)
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if ctype not in (FHIR_JSON, "application/json"):
                record["error"] = "content type %r" % ctype
                return 415, operation_outcome("not-supported", "send %s" % FHIR_JSON), ()
            try:
                bundle = validate(raw)
                response, outcomes = process(store, bundle)
            except Refused as r:
                record["error"] = r.diagnostics
                return r.status, operation_outcome(r.code, r.diagnostics, r.expression), ()
            record["entries"] = outcomes
            return 200, response, ()

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    tls = None

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def finish_request(self, request, client_address):
        if self.tls is not None:
            try:
                request.settimeout(30)
                request.do_handshake()
                request.settimeout(None)
            except (ssl.SSLError, OSError) as exc:
                sys.stderr.write("fhir_peer: TLS handshake with %s failed: %s\n" % (client_address, exc))
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        sys.stderr.write("fhir_peer: connection %s: %r\n" % (client_address, exc))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--base-path", default="/fhir")
    p.add_argument("--token", help="bearer token to require")
    p.add_argument("--tls-cert", help="server certificate chain (PEM); enables HTTPS")
    p.add_argument("--tls-key", help="server private key (PEM)")
    p.add_argument("--client-ca", help="CA certificates (PEM) for required client certificates")
    p.add_argument("--record", required=True, help="directory for one JSON file per POST")
    p.add_argument("--mode-file", required=True)
    p.add_argument("--max-seconds", type=float, default=600)
    args = p.parse_args()

    store, recorder = Store(), Recorder(args.record)
    server = Server(("127.0.0.1", args.port), make_handler(args, store, recorder))
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.client_ca)
        server.tls = ctx
    threading.Timer(args.max_seconds, lambda: os._exit(0)).start()
    print("LISTENING %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
