"""python -m train.app: try a trained translator in the browser (a Gradio page).

    python -m train.app --checkpoint CKPT [--port 7860] [--share off|on] [--device cuda|cpu]
        [--max_pixels N]

CKPT is anything models.load_generator reads. Upload one or more photos; each is translated in
both directions when the checkpoint holds both generators (a training checkpoint, a U-GAT-IT
checkpoint), once for a file of a single generator, at the photo's own size. The page shows the
checkpoint's name, architecture and training step. A file that is not an image, is larger than
--max_pixels or has more than one frame (an animated GIF) gets a line on the page saying so;
the server goes on. The server listens on 127.0.0.1 only; --share on asks Gradio for a public
link (that needs the network). Nothing else is sent anywhere: Gradio's analytics are off.
"""
import argparse
import os
import sys


from ..cli import MissingDependencyError, UserError, command
from ..options.checks import device_or_default
from .page import build_page
from .translator import Translator
from .uploads import DEFAULT_MAX_PIXELS

HOST = "127.0.0.1"
DEFAULT_PORT = 7860  # Gradio's
MAX_UPLOAD = "200mb"  # bytes per file Gradio accepts; larger uploads get Gradio's own message
# Before gradio is imported: no usage statistics, no version check, no Hugging Face Hub calls.
OFFLINE_ENVIRONMENT = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


class AppError(UserError, ValueError):
    """An argument the web demo cannot start with."""


def build_parser():
    p = argparse.ArgumentParser(prog="python -m train.app", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="any checkpoint models.load_generator reads")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port on {HOST} (default {DEFAULT_PORT})")
    p.add_argument("--share", choices=("off", "on"), default="off",
                   help="on: also a public gradio.live link (needs the network; default off)")
    p.add_argument("--device", default=None, help="cuda when available, else cpu")
    p.add_argument("--max_pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"largest upload in pixels, width x height (default {DEFAULT_MAX_PIXELS})")
    return p


def import_gradio():
    for name, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    try:
        import gradio
    except ImportError as error:
        raise MissingDependencyError(f"the web demo needs gradio ({error}): pip install gradio") from None
    return gradio


def check_arguments(args):
    """The device to translate on, or AppError."""
    if not 1 <= args.port <= 65535:
        raise AppError(f"--port must be in 1..65535, got {args.port}")
    if args.max_pixels < 1:
        raise AppError(f"--max_pixels must be >= 1, got {args.max_pixels}")
    return device_or_default(args.device)


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    device = check_arguments(args)
    translator = Translator.from_checkpoint(args.checkpoint, device, args.max_pixels)
    gr = import_gradio()
    facts = ", ".join(f"{name} {value}" for name, value in translator.description().items())
    print(f"translating on {device}: {facts}", flush=True)
    page = build_page(gr, translator)
    try:
        page.launch(server_name=HOST, server_port=args.port, share=args.share == "on", ssr_mode=False,
                    max_file_size=MAX_UPLOAD, footer_links=[])
    except OSError:  # Gradio: "Cannot find empty port in range ..."
        raise AppError(f"--port {args.port}: cannot listen on {HOST}:{args.port} (another program is using it, "
                       "or it needs privileges); choose another --port") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
