"""python -m train: train a CycleGAN (see `python -m train --help`)."""
import os
import sys

from . import options
from .cli import EXIT_INTERRUPTED, command
from .evaluation.paired import measured_rows


@command
def main(argv=None):
    opt = options.parse(argv)
    from .run import train
    summary = train(opt)
    if summary.get("index_html") or summary.get("interrupted"):
        print_summary(summary)
    return EXIT_INTERRUPTED if summary.get("interrupted") else 0


def print_summary(summary, log=print):
    if summary.get("interrupted"):
        run_dir = summary["run_dir"]
        log(f"interrupted at step {summary['step']}; checkpoint saved to {summary['checkpoint']}. Continue with:\n"
            f"  python -m train --resume --name {os.path.basename(run_dir)} "
            f"--checkpoints_dir {os.path.dirname(run_dir) or '.'}")
    else:
        log(f"done: {summary['step']} steps; checkpoint {summary['checkpoint']}")
    if "index_html" in summary:
        log(f"samples:  {summary['samples_dir']}")
        log(f"plots:    {', '.join(summary['plots'])}")
        log(f"page:     {summary['index_html']}")
    ev = summary.get("eval")
    if ev:
        log("evaluation on the paired synthetic test split (higher is better):")
        log(f"  {'':24s} {'PSNR dB':>8s} {'SSIM':>6s}")
        for label, key in measured_rows(ev):
            label = ("  " if key.startswith("identity") else "") + label
            log(f"  {label:24s} {ev['psnr_' + key]:8.2f} {ev['ssim_' + key]:6.3f}")


if __name__ == "__main__":
    sys.exit(main())
