"""tests/scripts/checks.py - the two helpers every scripted test uses: a check
that prints "ok: <what>" or "FAILED: <what>" and exits 1. Import with
    sys.path.insert(0, os.path.join(<tests dir>, "scripts")); from checks import fail, check
"""
import sys


def fail(what):
    print("FAILED:", what)
    sys.exit(1)


def check(cond, what):
    if not cond:
        fail(what)
    print("ok:", what)
