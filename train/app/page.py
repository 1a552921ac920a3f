"""The Gradio page of the web demo: what it shows and which Translator call each event makes.
All translation and checking is in translator.py / uploads.py; this module only wires them."""
import html

from .translator import Translator

TITLE = "cyclegan-ext translator"
# element ids, for people styling the page and for the browser test
PHOTOS_ID, GALLERY_ID, MESSAGES_ID, ABOUT_ID = "photos", "translations", "messages", "about"


def about_markdown(translator: Translator):
    facts = translator.description()
    return (f"**checkpoint** {html.escape(facts['checkpoint'])} · **architecture** "
            f"{html.escape(facts['architecture'])} · **training step** {html.escape(facts['step'])}")


def messages_markdown(messages):
    return "\n".join(f"- {html.escape(m)}" for m in messages)


def build_page(gr, translator: Translator):
    """The gr.Blocks app: upload photos, see their translations and what could not be translated."""
    def on_upload(paths):
        gallery, messages = translator.translate_files(paths)
        return gallery, messages_markdown(messages)

    with gr.Blocks(title=TITLE, analytics_enabled=False) as page:
        gr.Markdown(f"## {TITLE}")
        gr.Markdown(about_markdown(translator), elem_id=ABOUT_ID)
        photos = gr.File(label="photos (one or more)", file_count="multiple", elem_id=PHOTOS_ID)
        gallery = gr.Gallery(label="each photo, then its translations (at the photo's size)", format="png",
                             columns=translator.images_per_photo, object_fit="contain", elem_id=GALLERY_ID)
        messages = gr.Markdown(elem_id=MESSAGES_ID)
        photos.change(on_upload, inputs=photos, outputs=[gallery, messages])
    return page
