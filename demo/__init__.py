"""The Gradio web app: formats what the :mod:`gradcam` package returns.

``demo.service`` runs explanations and writes the files a request returns,
``demo.text`` holds the plain-language wording, ``demo.ui`` lays out the page.
"""
