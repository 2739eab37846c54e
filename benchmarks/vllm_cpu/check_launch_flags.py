"""Parse `vllm serve` commands with the installed vLLM's own argument parser.

Run with the Python of benchmarks/vllm_cpu's environment: reads a JSON list of argv lists
(each starting "vllm", "serve") on stdin and prints a JSON object: the vLLM version and, per
command, "ok" or the parser's error. Each command is parsed as `vllm serve` parses it,
validated as it validates its arguments, and turned into EngineArgs (so JSON configs such as
--kv-transfer-config and --eplb-config are checked against their dataclasses).
"""

import contextlib
import io
import json
import sys

import vllm
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.entrypoints.cli.serve import ServeSubcommand
from vllm.utils.argparse_utils import FlexibleArgumentParser


def check(argv: list[str]) -> str:
    if argv[:2] != ["vllm", "serve"]:
        return f"not a vllm serve command: {argv[:2]}"
    parser = FlexibleArgumentParser(prog="vllm")
    sub = ServeSubcommand()
    sub.subparser_init(parser.add_subparsers(dest="subcommand"))
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = parser.parse_args(argv[1:])
        if getattr(args, "model_tag", None):
            args.model = args.model_tag
        sub.validate(args)
        AsyncEngineArgs.from_cli_args(args)
    except SystemExit:
        return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "exit"
    except Exception as exc:  # noqa: BLE001 - report any rejection as the command's error
        return f"{type(exc).__name__}: {exc}"
    return "ok"


if __name__ == "__main__":
    commands = json.load(sys.stdin)
    print(json.dumps({"vllm_version": vllm.__version__,
                      "results": [check(list(a)) for a in commands]}))
