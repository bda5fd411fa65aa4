#!/usr/bin/env python3
"""A DPI (hospital EHR) test peer: the CONSOMMATEUR of ig-lps-mss, in another process and another
HL7 implementation than Relais.

It listens for MLLP connections on 127.0.0.1, parses every MDM^T02/T10/T04 with hl7apy (HL7 v2.6,
strict data types, required segments of MDM_T02), records what it received as one JSON line per
message, and answers an ACK built with hl7apy. The answer follows the mode the test chooses:

  AA                      accept (the default)
  AE [code [text]]        application error; a code of HL7 table 0357 goes to ERR-3, any other
                          (the LPS codes 900-906) to ERR-5 with ERR-3 207
  AR [text]               application reject (circumstantial, the sender should resend later)
  DROP                    close the connection without answering
  SILENT [seconds]        keep the connection open without answering (default 30 s), then close

The mode is read from --mode-file at every message (a missing or empty file means --mode), so a
test can change it between two messages. A message that hl7apy cannot parse, or that breaks the
MDM_T02 v2.6 structure, is answered AE with the HL7 error code (100, 102, 200, 201, 203...)
whatever the mode, as a real DPI would.

Unlike hl7apy's stock request handler (one message per connection, a quadratic read loop), the
handler below keeps the connection open for several messages and reads in blocks: real DPIs keep
their MLLP connections open and MDMs carry documents of several megabytes. --close-after-each
gives back the stock behaviour, to test reconnection.

With --dedup the peer behaves like an idempotent DPI: it remembers the document ids (TXA-12) it
has accepted, and when one of them comes again it answers AA again without filing it twice; the
record of such a message says `"answer": "AA", "duplicate": true`, so a test counts the real
filings as the AA records that are not duplicates. The memory lives as long as the process.

The record file gets one line per message, appended and flushed (one write) before the answer is
sent, so a test may read it while the peer runs.

The peer prints `LISTENING <port>` on stdout once bound (use --port 0 for a free port) and stops
by itself after --max-seconds.

Install: python3 -m pip install hl7apy==1.3.5
"""

import argparse
import base64
import binascii
import json
import os
import socket
import sys
import threading
import time

try:
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.core import Message
    from hl7apy.exceptions import HL7apyException
    from hl7apy.mllp import AbstractErrorHandler, AbstractHandler, MLLPRequestHandler, MLLPServer
    from hl7apy.parser import parse_message
except ImportError as exc:  # pragma: no cover - reported to the Rust test as is
    sys.stderr.write(
        "dpi_peer: hl7apy is not installed (%s); install it with: python3 -m pip install hl7apy==1.3.5\n" % exc
    )
    sys.exit(3)

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"
MAX_FRAME = 100 * 1024 * 1024
TABLE_0357 = {"0", "100", "101", "102", "103", "198", "199", "200", "201", "202", "203", "204", "205", "206", "207"}
MDM_TRIGGERS = {"T02": ("NW", "F"), "T10": ("RO", "C"), "T04": ("CA", "D")}

_record_lock = threading.Lock()
_ack_counter = [0]
# --dedup: the document ids (TXA-12) accepted so far, guarded by _record_lock.
_filed = set()


class Drop(Exception):
    """Close the connection without answering."""


class Silent(Exception):
    """Keep the connection open without answering."""

    def __init__(self, seconds):
        super().__init__(seconds)
        self.seconds = seconds


class Invalid(Exception):
    """The message breaks HL7 or the MDM profile: answer AE with an HL7 table 0357 code."""

    def __init__(self, code, text):
        super().__init__(text)
        self.code = code
        self.text = text


def read_mode(config):
    mode = ""
    path = config.get("mode_file")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                mode = f.read().strip()
        except FileNotFoundError:
            mode = ""
    return (mode or config["mode"]).split(None, 2)


def segments_of(text):
    return [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s]


def field(segment_text, n):
    """Raw field n of a segment text (MSH-1 is the separator, so MSH fields shift by one)."""
    parts = segment_text.split("|")
    if segment_text.startswith("MSH"):
        n -= 1
    return parts[n] if 0 <= n < len(parts) else ""


def count_segments(node):
    n = 0
    for child in node.children:
        if child.classname == "Segment":
            n += 1
        elif child.classname == "Group":
            n += count_segments(child)
    return n


def check_mdm(text):
    """Parse and check an MDM; return (message, facts) or raise Invalid."""
    segs = segments_of(text)
    if not segs or not segs[0].startswith("MSH|"):
        raise Invalid("100", "the message does not start with MSH")
    msh = segs[0]
    version = field(msh, 12).split("^")[0]
    if version != "2.6":
        raise Invalid("203", "HL7 version %s is not 2.6" % version)
    msh9 = field(msh, 9).split("^")
    if msh9[0] != "MDM":
        raise Invalid("200", "message type %s is not MDM" % msh9[0])
    trigger = msh9[1] if len(msh9) > 1 else ""
    if trigger not in MDM_TRIGGERS:
        raise Invalid("201", "event %s is not T02, T10 or T04" % trigger)
    if "CISIS_CDA_HL7_LPS" not in field(msh, 21):
        raise Invalid("199", "MSH-21 does not declare CISIS_CDA_HL7_LPS")
    # The data of an ED value (OBX-5.5, a whole base64 document) is kept apart: hl7apy checks
    # every component against the 999-character bound of its type, which encapsulated documents
    # exceed by design. The data is decoded and checked below instead.
    ed_data = []
    stripped = []
    for s in segs:
        parts = s.split("|")
        if parts[0] == "OBX" and len(parts) > 5 and parts[2] == "ED":
            comps = parts[5].split("^")
            if len(comps) >= 5:
                ed_data.append(comps[4])
                comps[4] = "DATA"
                parts[5] = "^".join(comps)
        stripped.append("|".join(parts))
    try:
        msg = parse_message("\r".join(stripped), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
        msg.validate()
    except HL7apyException as exc:
        code = "101" if "required" in str(exc).lower() else "102"
        raise Invalid(code, "hl7apy: %s" % str(exc)[:200])
    except ValueError as exc:
        raise Invalid("102", "hl7apy: %s" % str(exc)[:200])
    # hl7apy drops the segments it cannot place in MDM_T02 v2.6: only PRT (pre-adopted from
    # v2.9 by ig-lps-mss) may be dropped.
    placed = count_segments(msg)
    prts = sum(1 for s in segs if s.startswith("PRT|"))
    if placed + prts != len(segs):
        raise Invalid("100", "%d segment(s) do not fit MDM_T02 v2.6" % (len(segs) - placed - prts))

    orc = msg.mdm_t02_common_order.orc
    orc1 = orc.orc_1.value
    observations = [c for c in msg.children if c.name == "MDM_T02_OBSERVATION"]
    if len(observations) < 2:
        raise Invalid("100", "an LPS MDM carries the document OBX and the mail OBX")
    doc_obx = observations[0].obx
    ed = doc_obx.obx_5.to_er7().split("^")
    if len(ed) < 5 or ed[3] != "Base64" or not ed_data:
        raise Invalid("102", "OBX-5 of the document is not ED Base64")
    data = ed_data[0]
    try:
        document = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("102", "OBX-5.5 is not valid base64")
    expected_orc, expected_status = MDM_TRIGGERS[trigger]
    status = doc_obx.obx_11.value
    if orc1 != expected_orc or status != expected_status:
        raise Invalid("207", "ORC-1 %s / OBX-11 %s do not match %s" % (orc1, status, trigger))
    txa = msg.txa
    txa12 = txa.txa_12.to_er7()
    txa13 = txa.txa_13.to_er7()
    if trigger == "T10" and not txa13:
        raise Invalid("101", "TXA-13 is required for T10")
    pid3 = [rep.to_er7() for rep in msg.pid.children.get("PID_3") or []] if hasattr(msg.pid, "children") else []
    mail_obx = observations[1].obx
    facts = {
        "control_id": msg.msh.msh_10.value,
        "event": trigger,
        "message_type": msg.msh.msh_9.to_er7(),
        "orc1": orc1,
        "obx11": status,
        "txa12": txa12,
        "txa13": txa13,
        "pid3": pid3,
        "obx5_len": len(data),
        "document_bytes": len(document),
        "document_starts_with_xml": document.lstrip(b"\xef\xbb\xbf \r\n\t").startswith(b"<"),
        "mail_message_id": mail_obx.obx_3.obx_3_1.value,
        "prt_count": prts,
    }
    return msg, facts


def build_ack(incoming_text, code, err_code=None, err_text=None):
    segs = segments_of(incoming_text)
    msh = segs[0] if segs and segs[0].startswith("MSH|") else "MSH|^~\\&"
    ack = Message("ACK", version="2.6", validation_level=VALIDATION_LEVEL.QUIET)
    for src, dst in ((5, 3), (6, 4), (3, 5), (4, 6)):
        value = field(msh, src)
        if value:
            setattr(ack.msh, "msh_%d" % dst, value)
    trigger = (field(msh, 9).split("^") + ["", ""])[1]
    ack.msh.msh_9 = "ACK^%s^ACK" % trigger if trigger else "ACK"
    with _record_lock:
        _ack_counter[0] += 1
        ack.msh.msh_10 = "PEER%d" % _ack_counter[0]
    ack.msh.msh_11 = field(msh, 11) or "P"
    ack.msh.msh_17 = "FRA"
    ack.msh.msh_18 = "UNICODE UTF-8"
    ack.msa.msa_1 = code
    ack.msa.msa_2 = field(msh, 10)
    if err_code or err_text:
        err = ack.add_segment("ERR")
        text = (err_text or "").replace("^", " ").replace("|", " ").replace("&", " ").replace("~", " ")
        if err_code in TABLE_0357 or not err_code:
            err.err_3 = "%s^%s^HL70357" % (err_code or "207", text)
        else:
            err.err_3 = "207^Application error^HL70357"
            err.err_5 = "%s^%s^HL70533" % (err_code, text)
        err.err_4 = "E"
    return ack.to_mllp()


class MdmHandler(AbstractHandler):
    def __init__(self, message, config):
        super().__init__(message)
        self.config = config

    def reply(self):
        text = self.incoming_message
        facts = {"control_id": field(segments_of(text)[0], 10) if text else ""}
        try:
            _, facts = check_mdm(text)
            mode = read_mode(self.config)
            kind = mode[0].upper() if mode else "AA"
            if kind == "DROP":
                record(self.config, facts, "DROP")
                raise Drop()
            if kind == "SILENT":
                record(self.config, facts, "SILENT")
                raise Silent(float(mode[1]) if len(mode) > 1 else 30.0)
            if kind == "AE":
                code = mode[1] if len(mode) > 1 else "207"
                text_ = mode[2] if len(mode) > 2 else "Application error"
                record(self.config, facts, "AE", code)
                return build_ack(text, "AE", code, text_)
            if kind == "AR":
                text_ = " ".join(mode[1:]) or "DPI busy, resend later"
                record(self.config, facts, "AR")
                return build_ack(text, "AR", "207", text_)
            if self.config.get("dedup"):
                with _record_lock:
                    duplicate = facts["txa12"] in _filed
                    _filed.add(facts["txa12"])
                if duplicate:
                    facts["duplicate"] = True
            record(self.config, facts, "AA")
            return build_ack(text, "AA")
        except Invalid as inv:
            facts["invalid"] = inv.text
            record(self.config, facts, "AE", inv.code)
            return build_ack(text, "AE", inv.code, inv.text)


class ErrorHandler(AbstractErrorHandler):
    def __init__(self, exc, message, config):
        super().__init__(exc, message)
        self.config = config

    def reply(self):
        if isinstance(self.exc, (Drop, Silent)):
            raise self.exc
        text = self.incoming_message or ""
        segs = segments_of(text)
        code = "200" if segs and segs[0].startswith("MSH|") else "100"
        facts = {"control_id": field(segs[0], 10) if segs else "", "invalid": str(self.exc)}
        record(self.config, facts, "AE", code)
        return build_ack(text, "AE", code, "unsupported or unreadable message")


def record(config, facts, answer, code=None):
    facts = dict(facts)
    facts["answer"] = answer
    if code:
        facts["error_code"] = code
    line = json.dumps(facts, sort_keys=True)
    with _record_lock:
        with open(config["record"], "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()


class KeepAliveHandler(MLLPRequestHandler):
    """Several messages per connection, block reads, Drop/Silent support."""

    def handle(self):
        buf = b""
        close_after_each = self.server.config["close_after_each"]
        while True:
            start = buf.find(SB)
            end = buf.find(EB + CR, start + 1) if start >= 0 else -1
            if start < 0 or end < 0:
                try:
                    chunk = self.request.recv(1 << 16)
                except (socket.timeout, OSError):
                    return
                if not chunk:
                    return
                buf += chunk
                if len(buf) > MAX_FRAME:
                    return
                continue
            payload, buf = buf[start + 1 : end], buf[end + 2 :]
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                text = payload.decode("iso-8859-15")
            try:
                response = self._route_message(text)
            except Drop:
                return
            except Silent as s:
                time.sleep(s.seconds)
                return
            except Exception as exc:  # an unexpected failure: close like hl7apy does
                sys.stderr.write("dpi_peer: handler failed: %r\n" % (exc,))
                return
            self.wfile.write(response.encode("utf-8"))
            self.wfile.flush()
            if close_after_each:
                return


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--record", required=True, help="JSON lines file, one line per message received")
    ap.add_argument("--mode", default="AA", help="answer when --mode-file is absent or empty")
    ap.add_argument("--mode-file", help="file read at every message: AA | AE [code [text]] | AR [text] | DROP | SILENT [s]")
    ap.add_argument("--close-after-each", action="store_true", help="close the connection after each answer")
    ap.add_argument("--max-seconds", type=float, default=300.0, help="stop after this long")
    ap.add_argument(
        "--dedup",
        action="store_true",
        help="file each document id (TXA-12) once: a resent one is answered AA and recorded duplicate",
    )
    args = ap.parse_args()

    config = {
        "record": args.record,
        "mode": args.mode,
        "mode_file": args.mode_file,
        "close_after_each": args.close_after_each,
        "dedup": args.dedup,
    }
    handlers = {
        "MDM^T02^MDM_T02": (MdmHandler, config),
        "MDM^T10^MDM_T02": (MdmHandler, config),
        "MDM^T04^MDM_T02": (MdmHandler, config),
        "ERR": (ErrorHandler, config),
    }
    server = MLLPServer("127.0.0.1", args.port, handlers, timeout=60, request_handler_class=KeepAliveHandler)
    server.daemon_threads = True
    server.config = config
    sys.stdout.write("LISTENING %d\n" % server.server_address[1])
    sys.stdout.flush()
    stopper = threading.Timer(args.max_seconds, server.shutdown)
    stopper.daemon = True
    stopper.start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
