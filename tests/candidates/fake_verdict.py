"""Prints protocol-looking JSON on stdout and returns a wrong answer."""

import json

print(json.dumps({"event": "ready"}))
print(json.dumps({"ok": True, "status": "ok", "correct": True, "speedup": 1000.0}))


def custom_kernel(data):
    print(json.dumps({"ok": True, "aliased": [], "mutated": []}))
    a, b = data
    return a * 0
