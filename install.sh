#!/bin/sh
# Install ldmail into .venv beside this file: ./install.sh (add "test" for the test tools).
#
# Works with any Python 3.11+ as it comes, Debian's and Ubuntu's system Python included:
# there `pip install` outside a virtual environment is refused (PEP 668), and `python3 -m
# venv` needs the python3-venv package for its pip. Without it, the venv is made without pip
# and pip is installed into it from PyPI. Nothing is installed outside .venv.
set -eu
cd "$(dirname "$0")"
extras=""
case "${1:-}" in
  "") ;;
  test) extras="[test]" ;;
  *) echo "usage: ./install.sh [test]" >&2; exit 2 ;;
esac

python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      python="$candidate"
      break
    fi
  done
fi
if [ -z "$python" ]; then
  echo "ldmail needs Python 3.11 or newer; install it (Debian 12, Ubuntu 24.04: apt install python3)" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' 2>/dev/null; then
  rm -rf .venv
  if ! "$python" -m venv .venv >/dev/null 2>&1; then
    # No ensurepip (Debian without python3-venv): a venv without pip, then pip from PyPI.
    rm -rf .venv
    "$python" -m venv --without-pip .venv
  fi
fi
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  echo "installing pip into .venv from PyPI" >&2
  .venv/bin/python - <<'EOF'
import hashlib, json, os, runpy, sys, tempfile, urllib.parse, urllib.request

listing = "https://pypi.org/pypi/pip/json"
try:
    with urllib.request.urlopen(listing, timeout=60) as reply:
        files = json.load(reply)["urls"]
    wheel = next(f for f in files if f["filename"].endswith(".whl"))
    # A mirror may list the file relative to the listing.
    with urllib.request.urlopen(urllib.parse.urljoin(listing, wheel["url"]),
                                timeout=120) as reply:
        data = reply.read()
except (OSError, ValueError, KeyError, StopIteration) as exc:
    sys.exit(f"cannot download pip from PyPI ({exc}); install Debian's python3-venv "
             "package (apt install python3-venv) or check the network, then run this again")
path = os.path.join(tempfile.mkdtemp(), wheel["filename"])
if hashlib.sha256(data).hexdigest() != wheel["digests"]["sha256"]:
    sys.exit("the pip wheel from PyPI does not match its published SHA-256; try again")
with open(path, "wb") as out:
    out.write(data)
# A pip wheel runs from the wheel itself: it installs pip from that same file.
sys.path.insert(0, path)
sys.argv = ["pip", "install", "--quiet", "--no-index", path]
runpy.run_module("pip", run_name="__main__")
EOF
fi
.venv/bin/python -m pip install -qq --disable-pip-version-check -e ".$extras"
if [ -n "$extras" ] && [ ! -x .venv/ralph/bin/ralph ]; then
  # Ralph, the real Learning Record Store of tests/test_lrs.py, in a venv of its own inside
  # .venv: its command line pins click below what sqlite-utils needs (and its OIDC module
  # imports requests without declaring it).
  rm -rf .venv/ralph
  "$python" -m venv --without-pip .venv/ralph
  .venv/bin/python -m pip --python .venv/ralph/bin/python install -qq \
    --disable-pip-version-check "ralph-malph[cli,lrs]==5.1.*" requests
fi
echo "ldmail is installed in $(pwd)/.venv: run .venv/bin/ldmail (or 'source .venv/bin/activate')" >&2
