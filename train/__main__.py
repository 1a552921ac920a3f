"""python -m train: train a CycleGAN (see `python -m train --help`)."""
import sys

from . import options


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    opt = options.parse(argv)
    opt._explicit = sorted(options.explicit_dests(options.build_parser(), argv))
    from .checkpoint import UnsafeCheckpointError
    from .data import DataError
    from .loop import RunError, print_summary, train
    try:
        summary = train(opt)
    except (RunError, DataError, UnsafeCheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if summary.get("index_html") or summary.get("interrupted"):
        print_summary(summary)
    return 130 if summary.get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
