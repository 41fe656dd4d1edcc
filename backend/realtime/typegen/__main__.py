"""`python -m aiohttp_realtime.typegen`: see the package's docstring (`--help`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import Outputs, generate, load_methods, load_topics
from . import __doc__ as DOC


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aiohttp_realtime.typegen",
        description=DOC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--topics", required=True, metavar="MODULE:ATTR", help="a TopicRegistry or an iterable of TopicDefs"
    )
    parser.add_argument(
        "--methods", metavar="MODULE:ATTR", help="a MethodRegistry or an iterable of MethodDefs (optional)"
    )
    parser.add_argument("--schemas", type=Path, metavar="DIR", help="write the JSON Schemas here")
    parser.add_argument("--typescript", type=Path, metavar="DIR", help="write protocol.ts, app.ts, index.ts")
    parser.add_argument(
        "--python-models", type=Path, metavar="FILE", help="write the payloads' Pydantic models"
    )
    parser.add_argument("--protocol-typescript", type=Path, metavar="FILE", help="write protocol.ts alone")
    parser.add_argument("--protocol-python", type=Path, metavar="DIR", help="write the protocol's models")
    parser.add_argument(
        "--python-methods", type=Path, metavar="FILE", help="write the methods' Pydantic models"
    )
    parser.add_argument("--asyncapi", type=Path, metavar="FILE", help="write the AsyncAPI 3.0 document")
    parser.add_argument("--json2ts", metavar="CMD", help="json2ts command (default: node_modules/.bin, PATH)")
    args = parser.parse_args(argv)
    outputs = Outputs(
        args.schemas,
        args.typescript,
        args.python_models,
        args.protocol_typescript,
        args.protocol_python,
        args.asyncapi,
        args.python_methods,
    )
    if outputs == Outputs():
        parser.error("name at least one output (--schemas, --typescript, --python-models, ...)")
    try:
        methods = load_methods(args.methods) if args.methods else []
        generate(load_topics(args.topics), outputs, json2ts=args.json2ts, methods=methods)
    except (ValueError, ImportError, AttributeError, FileNotFoundError) as exc:
        print(f"typegen: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
