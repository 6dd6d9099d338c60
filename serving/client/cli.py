"""The command line of `python -m serving.client`: predictions, status and metadata from a TF
Serving model server (the real container or the project's own), over REST or gRPC.

A thin wrapper: everything it does is a call of the library, `serving.client`.
"""
import argparse
import json
import logging
import sys
from typing import Any, Optional, Sequence

from serving import client

_EXAMPLES = """\
examples:
  # one taxi trip; features left out are sent as missing (NaN, -1, "")
  python -m serving.client predict --host localhost --rest-port 8501 --model big_tipper \\
      --json '{"trip_miles": 1.2, "payment_type": "Cash"}'
  # several trips, over gRPC, from the version labelled "stable"
  python -m serving.client predict --grpc --grpc-port 8500 --model big_tipper --label stable \\
      --json '[{"trip_miles": 1.2}, {"fare": 30.0, "payment_type": "Credit Card"}]'
  # any other model: --raw sends the JSON list as the request's instances, unchanged
  python -m serving.client predict --model half_plus_two --raw --json '[1.0, 2.0, 5.0]'
  # which versions are loaded, and what the signatures take
  python -m serving.client status --model big_tipper
  python -m serving.client metadata --model big_tipper --grpc

Exit status: 0 on success, 1 when the server refuses the request (its message goes to
stderr), 2 on bad arguments.
"""


def _parser() -> argparse.ArgumentParser:
    """Builds the command-line parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host", default="localhost", help="model server host (default: %(default)s)")
    common.add_argument("--rest-port", type=int, default=client.DEFAULT_REST_PORT, help="REST port (default: %(default)s)")
    common.add_argument("--grpc-port", type=int, default=client.DEFAULT_GRPC_PORT, help="gRPC port (default: %(default)s)")
    common.add_argument("--grpc", action="store_true", help="use gRPC instead of REST")
    common.add_argument("--model", required=True, help="model name, e.g. big_tipper")
    which = common.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="a version number (default: the newest loaded)")
    which.add_argument("--label", help="a version label, e.g. stable or canary")
    common.add_argument(
        "--timeout", type=float, default=client.DEFAULT_TIMEOUT_S, help="seconds per request (default: %(default)s)"
    )

    parser = argparse.ArgumentParser(
        prog="python -m serving.client",
        description="Ask a TensorFlow Serving model server (or the project's local one) for "
        "predictions, model status or metadata, over REST or gRPC.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict", parents=[common], help="predict P(big tipper) for taxi trips (or raw instances)",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument(
        "--json", required=True, dest="payload",
        help="a trip (JSON object: raw feature -> value) or a list of trips; with --raw, the instances list",
    )
    predict.add_argument("--raw", action="store_true", help="send --json as the instances, without filling features")
    predict.add_argument("--signature", help="signature name, with --raw (default: serving_default)")
    commands.add_parser("status", parents=[common], help="versions of the model and their states")
    commands.add_parser("metadata", parents=[common], help="the model's signatures, inputs and dtypes")
    return parser


def _run(args: argparse.Namespace) -> Any:
    """Runs one command and returns what to print."""
    rest = f"{args.host}:{args.rest_port}"
    grpc_address = f"{args.host}:{args.grpc_port}"
    which = {"version": args.version, "label": args.label, "timeout_s": args.timeout}
    if args.command == "status":
        if args.grpc:
            return client.model_status_grpc(grpc_address, args.model, **which)
        return client.model_status_rest(rest, args.model, **which)
    if args.command == "metadata":
        if args.grpc:
            return client.model_metadata_grpc(grpc_address, args.model, **which)
        return client.model_metadata_rest(rest, args.model, **which)
    try:
        payload = json.loads(args.payload)
    except ValueError as err:
        raise ValueError(f"--json is not valid JSON: {err}") from err
    if args.raw:
        if not isinstance(payload, list):
            raise ValueError("--raw --json must be a JSON list of instances, e.g. '[1.0, 2.0]'")
        if args.grpc:
            outputs = client.predict_grpc(grpc_address, args.model, payload, signature=args.signature, **which)
            return {alias: value.tolist() for alias, value in outputs.items()}
        return {"predictions": client.predict_rest(rest, args.model, payload, signature=args.signature, **which)}
    trips = [payload] if isinstance(payload, dict) else payload
    if not isinstance(trips, list):
        raise ValueError("--json must be a trip (JSON object) or a list of trips")
    if args.grpc:
        return {"predictions": client.predict_trips_grpc(grpc_address, args.model, trips, **which)}
    return {"predictions": client.predict_trips_rest(rest, args.model, trips, **which)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns the exit status.

    Args:
        argv: Arguments without the program name; None reads sys.argv.

    Returns:
        0 on success, 1 when the server refused or did not answer, 2 on bad arguments.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = _run(args)
    except client.ServingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=client.json_default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
