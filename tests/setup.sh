#!/usr/bin/env bash
# Installs what the Relais test suite needs on a Debian machine (run as root, or with sudo).
# Idempotent: only missing packages are installed. Prints what it installs.
set -euo pipefail

# Debian packages: libxml2 (XSD validation, linked by relais-cda), xmllint (XSD oracle in tests),
# a JDK and Saxon-HE (schematron worker), python3 (reference tools),
# Dovecot (IMAP + LMTP) and Postfix (SMTP): the real mail servers started by
# relais_testsupport::mailserver for the IMAP/SMTP tests; OpenLDAP's slapd (and ldap-utils):
# the Annuaire directory started by relais_testsupport::slapd for the LDAP tests; Chromium and
# chromedriver: the real browser of the console's tests (relais_testsupport::browser);
# PostgreSQL: the server started by relais_testsupport::postgres for the PostgreSQL journal's
# tests (the package also creates the non-root `postgres` user that server runs as).
packages=(libxml2-dev libxml2-utils libsaxonhe-java openjdk-17-jdk-headless python3
  dovecot-imapd dovecot-lmtpd postfix slapd ldap-utils systemd chromium chromium-driver
  postgresql)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# A JDK of another version that already provides javac is fine.
if command -v javac >/dev/null 2>&1; then
  missing=("${missing[@]/openjdk-17-jdk-headless}")
fi
read -r -a missing <<<"${missing[*]:-}"

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  # Postfix's debconf would prompt and write /etc/postfix/main.cf: the tests run private
  # instances with their own configuration, so the system one stays unconfigured.
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  # Same for slapd: no system directory is created; the tests write their own slapd.conf.
  echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

for tool in xmllint java javac; do
  command -v "$tool" >/dev/null || { echo "setup: $tool is still missing after install" >&2; exit 1; }
done
test -f /usr/share/java/Saxon-HE.jar || { echo "setup: /usr/share/java/Saxon-HE.jar missing" >&2; exit 1; }
# The mail servers of the IMAP/SMTP tests, the LDAP server of the Annuaire tests and the browser
# of the console tests, checked by path (/usr/sbin may be off a non-root PATH).
for f in /usr/sbin/dovecot /usr/lib/dovecot/imap /usr/lib/dovecot/lmtp /usr/sbin/postfix \
  /usr/sbin/slapd /usr/sbin/slapadd /usr/bin/chromium /usr/bin/chromedriver; do
  test -x "$f" || { echo "setup: $f is still missing after install" >&2; exit 1; }
done
test -f /usr/lib/ldap/back_mdb.so || { echo "setup: slapd's MDB backend is missing" >&2; exit 1; }
# The PostgreSQL server binaries (versioned directory) and the user the test server runs as.
pg_ok=""
for d in /usr/lib/postgresql/*/bin; do
  if [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && [ -x "$d/pg_isready" ] && [ -x "$d/psql" ]; then
    pg_ok="$d"
  fi
done
[ -n "$pg_ok" ] || { echo "setup: PostgreSQL's initdb/postgres are missing from /usr/lib/postgresql/*/bin" >&2; exit 1; }
id postgres >/dev/null 2>&1 || { echo "setup: the postgres system user is missing" >&2; exit 1; }
# PyPI: hl7apy, the HL7 implementation of the DPI test peer (tests/peers/dpi_peer.py).
# Debian's own python3 refuses plain pip installs (PEP 668): fall back to the explicit flag.
if ! python3 -c 'import hl7apy' 2>/dev/null; then
  echo "setup: installing hl7apy (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check hl7apy==1.3.5 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages hl7apy==1.3.5
fi
python3 -c 'import hl7apy' || { echo "setup: hl7apy is still missing after install" >&2; exit 1; }
# PyPI: fhir.resources, the pydantic models (R4B, same elements as R4 for the resources Relais
# sends) with which the FHIR test peer (tests/peers/fhir_peer.py) checks every posted bundle.
# 8.x needs pydantic 2; the 6.x line with plain R4 needs pydantic 1 and does not import beside it.
if ! python3 -c 'import fhir.resources.R4B.bundle' 2>/dev/null; then
  echo "setup: installing fhir.resources (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check fhir.resources==8.3.0 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages fhir.resources==8.3.0
fi
python3 -c 'import fhir.resources.R4B.bundle' ||
  { echo "setup: fhir.resources is still missing after install" >&2; exit 1; }
# PyPI: lxml (XSD) and saxonche (SaxonC-HE, XSLT for the schematrons), the libraries of the
# reference pipeline the benchmarks compare Relais with (tests/reference/reference_pipeline.py).
if ! python3 -c 'import lxml.etree, saxonche' 2>/dev/null; then
  echo "setup: installing lxml and saxonche (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check lxml==6.1.3 saxonche==13.1.1 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages lxml==6.1.3 saxonche==13.1.1
fi
python3 -c 'import lxml.etree, saxonche' ||
  { echo "setup: lxml or saxonche is still missing after install" >&2; exit 1; }

echo "setup: test prerequisites present"
