# Packaging helper: writes lib/package.json (the mip manifest) from the files in lib/micromesos.
# MIT licence. `python3 tools/deploy.py package-json [--check]`; `make package-json` runs it.
import argparse
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(ROOT, "lib")


def lib_version():
    """micromesos.__version__, read without importing lib/ (CPython may lack its shims)."""
    with open(os.path.join(LIB, "micromesos", "__init__.py")) as f:
        m = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M)
    if not m:
        raise SystemExit("deploy: no __version__ in lib/micromesos/__init__.py")
    return m.group(1)


def on_a_board(rel, role=None):
    """Whether `make deploy ROLE=role` (boards/board.mk DEPLOY_PY) puts lib/`rel` ("micromesos/x.py") on a board
    (role None: package.json, for any role): all of lib/ but the names for tools and tests (micromesos/enums.py: the
    agent and the node read schema's numbers) and the gateway (mgateway/: on a host, or frozen into the ESP32
    bridge's firmware); for the agent, nor the node's and the link's modules (micromesos/node*, link*: it imports
    none, tests/test_make_flash.py checks)."""
    rel = rel.replace(os.sep, "/")
    if rel.startswith("mgateway/") or rel == "micromesos/enums.py":
        return False
    return role != "agent" or not rel.startswith(("micromesos/node", "micromesos/link"))


def lib_files():
    """Every .py under lib/micromesos a board gets, as paths relative to lib/ with "/" separators, sorted."""
    out = []
    for d, dirs, files in os.walk(os.path.join(LIB, "micromesos")):
        dirs[:] = sorted(x for x in dirs if x != "__pycache__")
        for f in files:
            rel = os.path.relpath(os.path.join(d, f), LIB).replace(os.sep, "/")
            if f.endswith(".py") and on_a_board(rel):
                out.append(rel)
    return sorted(out)


def package_json():
    # mip resolves relative URLs against package.json's own location (lib/), so a local path,
    # github:<owner>/<repo>/lib/package.json and a web server all work with the same file.
    return {
        "urls": [[p, p] for p in lib_files()],
        "version": lib_version(),
        "deps": [],
    }


def render(obj):
    return json.dumps(obj, indent=2) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    pj = sub.add_parser("package-json", help="write lib/package.json")
    pj.add_argument("--check", action="store_true", help="only report whether it is up to date")
    args = ap.parse_args(argv)
    path = os.path.join(LIB, "package.json")
    text = render(package_json())
    if args.check:
        try:
            with open(path) as f:
                cur = f.read()
        except OSError:
            cur = ""
        if cur != text:
            print("lib/package.json is out of date: run `make package-json`", file=sys.stderr)
            return 1
        print("lib/package.json is up to date (%d files)" % len(lib_files()))
        return 0
    with open(path, "w") as f:
        f.write(text)
    print("wrote lib/package.json (%d files)" % len(lib_files()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
