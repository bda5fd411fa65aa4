#!/usr/bin/env python3
"""Regenerate mappings/nos/*.csv from the ANS NOS association tables (SVS XML).

Usage: python3 mappings/tools/nos_to_csv.py ../shared/ans/nos mappings/nos

The NOS tables (ASS_A11: CDA model templateId -> XDS formatCode; ASS_X04: document type
code -> XDS classCode) are published by the ANS. Relais keeps their facts as small CSV files so
that the engine loads them at start and an update is a data change, not a code change.
"""
import csv
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

SVS = {"s": "urn:ihe:iti:svs:2008"}
TABLES = {
    "ASS_A11-CorresModeleCDA-XdsFormatCode-CISIS.xml": (
        "format-codes.csv",
        ["template_id", "template_id_system", "format_code", "format_code_system"],
    ),
    "ASS_X04-CorrespondanceType-Classe-CISIS.xml": (
        "class-codes.csv",
        ["type_code", "type_code_system", "class_code", "class_code_system"],
    ),
}


def main(src: Path, dst: Path) -> None:
    for name, (out, header) in TABLES.items():
        root = ET.parse(src / name).getroot()
        vs = root.find("s:ValueSet", SVS)
        rows = []
        for mapped in root.iterfind(".//s:MappedConcept", SVS):
            a, b = mapped.findall("s:Concept", SVS)
            rows.append([a.get("code"), a.get("codeSystem"), b.get("code"), b.get("codeSystem")])
        with open(dst / out, "w", newline="") as f:
            f.write(f"# {vs.get('displayName')} (OID {vs.get('id')}, updated {vs.get('dateMaj')})\n")
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)
        print(f"{out}: {len(rows)} rows")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
