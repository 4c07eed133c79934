"""Checks openapi.yaml, and writes the test-only copy of it that schemathesis reads.

  python scripts/openapi_check.py validate openapi.yaml
      Validates the document as OpenAPI 3.1 with openapi-spec-validator. JSON Schema's `pattern`
      is an ECMA-262 regular expression; Python's `re` cannot read `\\p{L}`, so the `regex`
      format is checked by regress (an ECMA-262 engine), in Unicode mode (the `u` flag, as
      JSON Schema validators compile patterns), where a wrong property name is an error.

  python scripts/openapi_check.py python-copy openapi.yaml OUT
      Writes a copy whose `\\p{L}`, `\\p{Z}` and `\\p{N}` inside character classes are spelled out
      as code point ranges, for tools that compile patterns with Python's `re` (schemathesis
      approximates `\\p{Z}` as ASCII whitespace, which would generate ids with a newline as valid
      ones). The ranges come from unicodedata2 at Unicode 18.0, the version of the function's
      own tables, so the copy accepts exactly the characters the function does. Nothing else
      in the document changes; the copy is written under target/ and never committed.
"""

import re
import sys

import yaml


def validate(path):
    import regress
    from openapi_schema_validator import oas31_format_checker
    from openapi_spec_validator import validate as validate_spec
    from openapi_spec_validator.readers import read_from_filename

    @oas31_format_checker.checks("regex", raises=regress.RegressError)
    def ecma_regex(instance):
        if isinstance(instance, str):
            regress.Regex(instance, "u")
        return True

    spec, _ = read_from_filename(path)
    validate_spec(spec)
    patterns = list(find_patterns(spec))
    for p in patterns:
        regress.Regex(p, "u")
    print(f"{path}: valid OpenAPI 3.1; {len(patterns)} patterns are valid ECMA-262 (u flag)")


def find_patterns(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "pattern" and isinstance(v, str):
                yield v
            else:
                yield from find_patterns(v)
    elif isinstance(node, list):
        for v in node:
            yield from find_patterns(v)


def ranges(categories):
    """Code point ranges whose general category starts with one of `categories`."""
    import unicodedata2

    assert unicodedata2.unidata_version == "18.0.0", unicodedata2.unidata_version
    out, start, prev = [], None, None
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        hit = unicodedata2.category(chr(cp))[0] in categories
        if hit and start is None:
            start = cp
        if not hit and start is not None:
            out.append((start, prev))
            start = None
        if hit:
            prev = cp
    if start is not None:
        out.append((start, prev))
    return out


def python_class(categories):
    def esc(cp):
        return f"\\U{cp:08X}"

    return "".join(esc(a) if a == b else f"{esc(a)}-{esc(b)}" for a, b in ranges(categories))


def python_copy(path, out):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    spec = yaml.safe_load(text)
    spelled = {c: python_class(c) for c in "LZN"}

    def rewrite(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "pattern" and isinstance(v, str) and "\\p{" in v:
                    new = re.sub(r"\\p\{([LZN])\}", lambda m: spelled[m.group(1)], v)
                    assert "\\p{" not in new, f"a property escape left in {v}"
                    re.compile(new)
                    node[k] = new
                else:
                    rewrite(v)
        elif isinstance(node, list):
            for v in node:
                rewrite(v)

    rewrite(spec)
    spec.setdefault("info", {})["x-generated"] = (
        f"Test-only copy of {path} by scripts/openapi_check.py: \\p{{L}}, \\p{{Z}}, \\p{{N}} "
        "spelled out as Unicode 18.0 ranges for Python's re."
    )
    with open(out, "w", encoding="utf-8") as f:
        yaml.safe_dump(spec, f, allow_unicode=False, sort_keys=False)
    print(f"{out}: written from {path}")


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["validate", path]:
            validate(path)
        case ["python-copy", path, out]:
            python_copy(path, out)
        case _:
            sys.exit(__doc__)
