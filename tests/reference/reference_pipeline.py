#!/usr/bin/env python3
"""The reference inbound pipeline of the benchmarks: MSSanté mail -> IHE XDM -> CDA, validated,
written the way a hospital integration scripter would write it with the Python standard library
and lxml:

  1. the mail is parsed with `email` (policy.default) and its ZIP attachment taken;
  2. the ZIP is opened with `zipfile`; every IHE_XDM/<subset>/METADATA.XML is parsed with lxml;
  3. each document the metadata lists (rim:ExtrinsicObject, slot URI) is read from the ZIP and
     its SHA-1 (`hashlib`) and size compared with the metadata's `hash` and `size` slots;
  4. the CDA is parsed with lxml (no DTD, no entities, no network) and validated against the
     ANS XSD (CDA_extended.xsd, loaded once);
  5. optionally, the schematrons: compiled XSLT stylesheets (given with --schematron, loaded
     once) run in-process on SaxonC-HE (PyPI `saxonche`); a failed assert is an error unless its
     role says warning/info, a fired report a warning unless its role says error/fatal.

It does less than `relais check` (no CI-SIS header rules, no XDM-vs-CDA consistency, no PDF or
mail-header checks): it is the baseline the benchmarks compare Relais with, and
crates/bench/tests/reference_pipeline.rs checks that it gives the same verdict as `relais check`
on a valid and on an invalid sample, so it really validates.

Usage:
  reference_pipeline.py --xsd CDA_extended.xsd [--schematron X.xsl]... MAIL.eml...
      prints one JSON object per mail: {"file", "valid", "documents", "errors", "warnings"}
      and exits 0 when every mail is valid, 1 otherwise.
  reference_pipeline.py --xsd ... [--schematron ...] --bench ROUNDS --count N MAIL.eml
      processes the mail N times per round (schemas loaded beforehand, as a service would) and
      prints {"mails_per_s": [one figure per round], ...} as JSON.

A stylesheet given with --schematron is Relais's compilation of the ANS .sch (ISO Schematron
has no XSLT 2 compiler on PyPI); its results are `rsch:r` elements whose `c` attribute numbers
a check described in the JSON file `<stylesheet>.checks.json` (a list of {"kind", "role"}).

Install: python3 -m pip install lxml saxonche (tests/setup.sh does it).
"""

import argparse
import email
import email.policy
import hashlib
import io
import json
import os
import sys
import time
import zipfile

try:
    from lxml import etree
except ImportError as exc:  # reported to the Rust test and bench as is
    sys.stderr.write(
        "reference_pipeline: lxml is not installed (%s); install it with: "
        "python3 -m pip install lxml (bash tests/setup.sh does it)\n" % exc
    )
    sys.exit(3)

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RSCH = "urn:relais:schematron:result"
MAX_ENTRY = 200 * 1024 * 1024


def safe_parser():
    # What a careful scripter writes: no DTD loading, no entity expansion, no network.
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )


class Schematron:
    """One compiled stylesheet on SaxonC-HE, with the description of its checks."""

    processor = None

    def __init__(self, path):
        try:
            from saxonche import PySaxonProcessor
        except ImportError as exc:
            sys.stderr.write(
                "reference_pipeline: saxonche is not installed (%s); install it with: "
                "python3 -m pip install saxonche (bash tests/setup.sh does it)\n" % exc
            )
            sys.exit(3)
        if Schematron.processor is None:
            Schematron.processor = PySaxonProcessor(license=False)
        self.name = os.path.basename(path)
        xslt = Schematron.processor.new_xslt30_processor()
        self.executable = xslt.compile_stylesheet(stylesheet_file=os.path.abspath(path))
        if self.executable is None:
            raise RuntimeError("cannot compile %s" % path)
        with open(path + ".checks.json", encoding="utf-8") as f:
            self.checks = json.load(f)

    def run(self, cda_bytes):
        """(errors, warnings) of the document."""
        node = Schematron.processor.parse_xml(xml_text=cda_bytes.decode("utf-8"))
        out = self.executable.transform_to_string(xdm_node=node)
        errors, warnings = [], []
        if out is None:
            return ["%s: the transformation failed" % self.name], []
        root = etree.fromstring(out.encode("utf-8"), safe_parser())
        for r in root.iter("{%s}r" % RSCH):
            check = self.checks[int(r.get("c"))]
            role = (check.get("role") or "").strip().lower()
            what = "%s: %s check %s at %s" % (self.name, check["kind"], r.get("c"), r.get("l", ""))
            if r.get("e") == "1":
                warnings.append(what + " could not be evaluated")
            elif role in ("error", "fatal", "erreur"):
                errors.append(what)
            elif role in ("warning", "warn", "avertissement", "info", "information", "note"):
                warnings.append(what)
            elif check["kind"] == "assert":
                errors.append(what)
            else:
                warnings.append(what)
        return errors, warnings


class Pipeline:
    def __init__(self, xsd, schematrons):
        self.schema = etree.XMLSchema(etree.parse(xsd))
        self.schematrons = [Schematron(p) for p in schematrons]

    def process(self, raw):
        """The verdict on one mail: dict with valid, documents, errors, warnings."""
        errors, warnings = [], []
        documents = 0
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        zips = []
        for part in msg.iter_attachments():
            name = (part.get_filename() or "").upper()
            if part.get_content_type() == "application/zip" or name.endswith(".ZIP"):
                zips.append(part.get_content())
        if not zips:
            errors.append("mail: no IHE XDM ZIP attachment")
        for data in zips:
            try:
                archive = zipfile.ZipFile(io.BytesIO(data))
            except zipfile.BadZipFile as exc:
                errors.append("zip: %s" % exc)
                continue
            names = archive.namelist()
            metadata = [
                n for n in names if n.upper().startswith("IHE_XDM/") and n.upper().endswith("/METADATA.XML")
            ]
            if not metadata:
                errors.append("xdm: no IHE_XDM/<subset>/METADATA.XML")
            for meta_name in metadata:
                folder = meta_name.rsplit("/", 1)[0]
                try:
                    meta = etree.fromstring(archive.read(meta_name), safe_parser())
                except etree.XMLSyntaxError as exc:
                    errors.append("xdm: METADATA.XML is not XML: %s" % exc)
                    continue
                for eo in meta.iter("{%s}ExtrinsicObject" % RIM):
                    slots = {}
                    for slot in eo.iter("{%s}Slot" % RIM):
                        values = [v.text or "" for v in slot.iter("{%s}Value" % RIM)]
                        slots[slot.get("name")] = values[0].strip() if values else ""
                    uri = slots.get("URI")
                    if not uri:
                        errors.append("xdm: a document entry has no URI slot")
                        continue
                    path = folder + "/" + uri
                    if path not in names:
                        errors.append("xdm: %s is listed but not in the ZIP" % path)
                        continue
                    if archive.getinfo(path).file_size > MAX_ENTRY:
                        errors.append("xdm: %s is too large" % path)
                        continue
                    doc = archive.read(path)
                    documents += 1
                    if slots.get("hash", "").lower() != hashlib.sha1(doc).hexdigest():
                        errors.append("xdm: hash of %s differs from METADATA.XML" % uri)
                    if slots.get("size") and slots["size"] != str(len(doc)):
                        errors.append("xdm: size of %s differs from METADATA.XML" % uri)
                    if eo.get("mimeType", "text/xml") not in ("text/xml", "application/xml"):
                        continue
                    e, w = self.check_cda(uri, doc)
                    errors.extend(e)
                    warnings.extend(w)
        return {"valid": not errors, "documents": documents, "errors": errors, "warnings": warnings}

    def check_cda(self, uri, doc):
        errors, warnings = [], []
        try:
            tree = etree.fromstring(doc, safe_parser())
        except etree.XMLSyntaxError as exc:
            return ["cda: %s is not well-formed XML: %s" % (uri, exc)], []
        if not self.schema.validate(tree):
            for err in self.schema.error_log:
                errors.append("xsd: %s line %d: %s" % (uri, err.line, err.message))
        for sch in self.schematrons:
            e, w = sch.run(doc)
            errors.extend(e)
            warnings.extend(w)
        return errors, warnings


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--xsd", required=True)
    ap.add_argument("--schematron", action="append", default=[])
    ap.add_argument("--bench", type=int, metavar="ROUNDS")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("mails", nargs="+")
    args = ap.parse_args()
    pipeline = Pipeline(args.xsd, args.schematron)
    if args.bench:
        with open(args.mails[0], "rb") as f:
            raw = f.read()
        first = pipeline.process(raw)
        if not first["valid"]:
            print(json.dumps({"error": "the benchmark mail is invalid", "verdict": first}))
            return 1
        rates = []
        for _ in range(args.bench):
            t = time.perf_counter()
            for _ in range(args.count):
                pipeline.process(raw)
            rates.append(args.count / (time.perf_counter() - t))
        print(json.dumps({"mails_per_s": rates, "count": args.count, "verdict": first}))
        return 0
    all_valid = True
    for path in args.mails:
        with open(path, "rb") as f:
            verdict = pipeline.process(f.read())
        verdict["file"] = path
        all_valid &= verdict["valid"]
        print(json.dumps(verdict))
    return 0 if all_valid else 1


if __name__ == "__main__":
    sys.exit(main())
