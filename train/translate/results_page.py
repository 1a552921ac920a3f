"""The results page of `python -m train.translate`: index.html in the output folder showing each
input next to its translation, like the official CycleGAN test.py page, split into pages of
PAGE_SIZE images (index.html, index_2.html, ...) linked to each other, with the images that
could not be translated listed on the first page. Pages are written atomically.

The pages are self-contained within the output folder: each input is shown as a thumbnail
embedded in the page (a data: URI of the image as translate read it, upright and RGB), so the
folder can be moved or shared without the inputs; outputs are linked by their path inside it.
Each image is captioned with its own name (the input's as found under --input)."""
import base64
import html
import io
import os
import re
from dataclasses import dataclass
from urllib.parse import quote

from ..atomic import atomic_write
from ..data import load_rgb

PAGE_SIZE = 50
THUMBNAIL_SIDE = 320  # the largest side an image is shown at on the page
THUMBNAIL_QUALITY = 90
_PAGE_NAME = re.compile(r"index(_[0-9]+)?\.html")
_STYLE = ("body{font-family:sans-serif;margin:1em}td{padding:4px;vertical-align:top;text-align:center}"
          f"img{{max-width:{THUMBNAIL_SIDE}px;max-height:{THUMBNAIL_SIDE}px}}.failed{{color:#a00}}"
          "nav a,nav b{margin-right:.5em}")


@dataclass(frozen=True)
class Row:
    """One translated image: the input's name (relative to --input) and path, the output's name
    (relative to the output folder) and path, and what to say under the output."""
    input_name: str
    input_path: str
    output_name: str
    output_path: str
    caption: str


def page_name(number):
    return "index.html" if number == 1 else f"index_{number}.html"


def existing_pages(folder):
    """Results pages already in `folder` (names of this module's pattern only)."""
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if _PAGE_NAME.fullmatch(n))


def write_pages(folder, translated, failed, title, page_size=PAGE_SIZE):
    """translated: [Row], failed: [(name, reason)]. Writes the pages, removes older pages beyond
    the new count, returns the page paths."""
    chunks = [translated[i:i + page_size] for i in range(0, len(translated), page_size)] or [[]]
    paths = []
    for number, rows in enumerate(chunks, start=1):
        text = _page(folder, number, len(chunks), rows, failed if number == 1 else [], title, len(translated))
        path = os.path.join(folder, page_name(number))
        atomic_write(path, lambda f, text=text: f.write(text.encode("utf-8")), what="results page")
        paths.append(path)
    for stale in set(existing_pages(folder)) - set(paths):
        os.unlink(stale)
    return paths


def _page(folder, number, count, rows, failed, title, total):
    first = (number - 1) * PAGE_SIZE + 1
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>{total} image(s) translated" + (f", {len(failed)} could not be" if failed else "")
             + (f"; page {number} of {count} (images {first}-{first + len(rows) - 1})" if count > 1 else "") + ".</p>"]
    nav = _navigation(number, count)
    parts.append(nav)
    if failed:
        parts.append("<h2 class='failed'>Not translated</h2><ul class='failed'>")
        parts.extend(f"<li>{html.escape(name)}: {html.escape(reason)}</li>" for name, reason in failed)
        parts.append("</ul>")
    if rows:
        parts.append("<table><tr><th>input</th><th>output</th></tr>")
        for row in rows:
            parts.append(f"<tr><td>{_thumbnail(row.input_path)}<br>{html.escape(row.input_name)}</td>"
                         f"<td>{_image(folder, row.output_path)}<br>{html.escape(row.output_name)}, "
                         f"{html.escape(row.caption)}</td></tr>")
        parts.append("</table>")
    parts.append(nav + "</body></html>\n")
    return "\n".join(parts)


def _navigation(number, count):
    if count == 1:
        return ""
    links = [f"<b>{k}</b>" if k == number else f"<a href='{page_name(k)}'>{k}</a>" for k in range(1, count + 1)]
    return "<nav>pages: " + " ".join(links) + "</nav>"


def _image(folder, path):
    href = quote(os.path.relpath(os.path.abspath(path), os.path.abspath(folder)).replace(os.sep, "/"))
    return f"<img src='{html.escape(href, quote=True)}' loading='lazy'>"


def _thumbnail(path):
    """The image at `path`, at most THUMBNAIL_SIDE pixels a side, as an embedded JPEG."""
    try:
        img = load_rgb(path)
    except Exception as error:  # removed or changed since it was translated: say so, keep the page
        return f"<span class='failed'>(cannot show the input: {html.escape(type(error).__name__)})</span>"
    img.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img src='data:image/jpeg;base64,{data}' width='{img.width}' height='{img.height}'>"
