"""The page's look and its few scripts: colours, layout rules, and what runs in the browser.

Nothing here talks to the server: the scripts only change what the page shows
between the server's answers (the old results hidden the instant a new photo is
chosen, a photo the browser cannot display replaced by the server's decoded copy,
the download started once its file exists).
"""

from __future__ import annotations

import json

from demo import text

# Colours chosen for contrast: every text colour below reaches 4.5:1 on its background
# (checked from computed styles by tests/test_browser.py).
ACCENT = "#b3400a"  # buttons, selected tab, links: white text on it is 5.6:1
CSS = f"""
:root, .gradio-container {{
  --button-primary-background-fill: {ACCENT};
  --button-primary-background-fill-hover: #8f3308;
  --button-primary-text-color: #ffffff;
  --button-primary-border-color: {ACCENT};
  --block-label-text-color: #3f3f46;
  --block-title-text-color: #27272a;
  --block-info-text-color: #52525b;
  --body-text-color-subdued: #52525b;
  --input-placeholder-color: #5f5f69;
  --link-text-color: {ACCENT};
  --color-accent: {ACCENT};
  --color-accent-soft: #fdebdd;
  --checkbox-label-text-color-selected: #27272a;
}}
.gradio-container h1 {{ margin: 0 0 2px 0; font-size: 1.6em; }}
#intro p {{ margin: 0; }}
.banner {{ background: #fff4e5; border: 1px solid #b3400a; border-radius: 8px; padding: 2px 12px; color: #27272a; }}
#sentence {{ font-size: 1.12em; min-height: 1.6em; }}
#sentence p {{ margin: 0; }}
#picker-row {{ align-items: flex-end; }}
#explain {{ max-height: 46px; margin-bottom: 2px; }}
#target-hint, #upload-hint {{ color: #8a1c1c; font-weight: 600; }}
.panel label[data-testid="block-label"] {{ position: static; box-shadow: none; border: none; }}
.panel {{ display: flex; flex-direction: column; flex-wrap: nowrap; }}
.panel .image-container {{ flex: 1 1 auto; min-height: 0; height: auto !important; }}
.gallery .caption-label, .gallery-item .caption-label {{ color: #27272a !important; opacity: 1 !important; }}
.tab-container button[role="tab"] {{ color: #3f3f46; }}
.tab-container button[role="tab"][aria-selected="true"] {{ color: {ACCENT}; }}
#legend {{ margin-top: -4px; }}
#legend .scale {{ height: 14px; border-radius: 4px; }}
#legend .words {{ display: flex; justify-content: space-between; font-size: 0.95em; color: #27272a; }}
.top5 {{ list-style: none; padding: 0; margin: 0; }}
.top5-title {{ font-weight: 600; margin: 0 0 6px 0; color: #27272a; }}
.top5 li {{ display: grid; grid-template-columns: 1fr auto; gap: 0 8px; margin: 0 0 6px 0; color: #27272a; }}
.top5 li.chosen .name {{ font-weight: 700; }}
.top5 .bar {{ grid-column: 1 / span 2; height: 6px; background: #e4e4e7; border-radius: 3px; }}
.top5 .bar span {{ display: block; height: 6px; background: {ACCENT}; border-radius: 3px; }}
@media (max-width: 640px) {{
  .panel {{ height: auto !important; }}
  .panel .image-container, .panel .image-frame {{ height: auto !important; }}
  .panel img {{ max-height: 50vh; width: 100%; object-fit: contain; }}
  .panel .icon-button-wrapper {{
    position: static; justify-content: flex-end; margin: 0 0 4px auto; width: fit-content;
  }}
  #classes-gallery .grid-container, #models-gallery .grid-container {{ --grid-cols: 1 !important; }}
  #classes-gallery .grid-wrap, #models-gallery .grid-wrap {{ height: auto !important; max-height: none !important; }}
}}
#examples .gallery-item img, #examples button img {{ object-fit: cover; }}
/* No empty boxes: results, download and Explore answers show once they have something, or while it is on its way. */
#results:not(:has(#panel-original img)) {{ display: none; }}
/* A new photo hides the old results at once, before the server answers (see NEW_PHOTO_JS). */
#results.is-stale {{ display: none; }}
/* A photo the browser cannot show (HEIC, TIFF) waits for the server's decoded copy instead of a broken icon. */
#input-image img.undisplayable {{ visibility: hidden; }}
/* Meanwhile the sentence says what is happening, not what the old photo showed. */
#sentence.is-waiting > * {{ display: none; }}
#sentence.is-waiting::before {{ content: {json.dumps(text.EXPLAINING, ensure_ascii=False)}; font-style: italic; }}
/* (No comma inside :has(): Gradio's CSS scoping splits selectors at every comma.) */
.until-filled:not(:has(img)):not(:has(a)):not(:has(.wrap:not(.hide))) {{ display: none; }}
"""


#: Page script, run once at load: the class picker selects its text when entered (typing
#: replaces "Top prediction"), the sentence is a live region, uploads over the limit are
#: explained in our words before Gradio's own check, and "Your photo" shows the server's
#: decoded copy of a photo the browser cannot display (HEIC, TIFF).
PAGE_JS = """
() => {
  const LIMIT_MB = %(limit)s;
  const TOO_BIG = %(too_big)s;
  const picker = (el) => el && el.matches && el.matches('#target input');
  // Typing replaces the chosen class: the text is selected when the picker is entered or clicked,
  // unless the person is in the middle of typing a name (then a click moves the caret).
  let typing = false;
  document.addEventListener('focusin', (e) => { if (picker(e.target)) { typing = false; e.target.select(); } });
  document.addEventListener('input', (e) => { if (picker(e.target)) typing = true; }, true);
  document.addEventListener('keydown', (e) => {
    if (picker(e.target) && (e.key === 'Escape' || e.key === 'Enter')) typing = false;
  }, true);
  document.addEventListener('click', (e) => { if (picker(e.target) && !typing) e.target.select(); }, true);
  // "Your photo": a file the browser cannot decode shows the server's copy (the Original panel) once it comes.
  const decoded = () => {
    const copy = document.querySelector('#panel-original img');
    return copy && copy.complete && copy.naturalWidth > 0 ? copy.src : '';
  };
  // A new photo in "Your photo": the old results leave before the next frame is painted (the server's answer
  // brings the new ones; SHOWN_JS shows them).
  let shownPhoto = null;
  const stale = () => {
    const img = document.querySelector('#input-image img');
    const photo = img ? (img.dataset.photo || img.src) : '';
    if (shownPhoto !== null && photo !== shownPhoto) {
      const results = document.querySelector('#results');
      if (results) results.classList.add('is-stale');
    }
    shownPhoto = photo;
  };
  const mend = () => {
    for (const img of document.querySelectorAll('#input-image img')) {
      if (img.dataset.watched !== img.src) {
        img.dataset.watched = img.src;
        img.dataset.photo = img.src;
        img.classList.remove('undisplayable');
        img.addEventListener('error', () => img.classList.add('undisplayable'), {once: true});
        if (img.complete && img.naturalWidth === 0 && img.src) img.classList.add('undisplayable');
      }
      if (img.classList.contains('undisplayable') && decoded()) {
        img.src = decoded();  // the same photo, decoded by the server: dataset.photo still names the upload
        img.dataset.watched = img.src;
        img.classList.remove('undisplayable');
      }
    }
  };
  const live = () => {
    const upload = document.querySelector('#upload-hint');
    if (upload && !upload.textContent.trim() && !upload.hidden) { upload.hidden = true; upload.style.display = 'none'; }
    for (const id of ['#sentence', '#target-hint']) {
      const region = document.querySelector(id);
      if (region && !region.hasAttribute('aria-live')) {
        region.setAttribute('aria-live', 'polite');
        region.setAttribute('role', 'status');
      }
    }
    mend();
    stale();
  };
  live();
  new MutationObserver(live).observe(
    document.body, {childList: true, subtree: true, attributes: true, attributeFilter: ['src']},
  );
  document.addEventListener('load', (e) => {
    if (e.target.matches && e.target.matches('#panel-original img')) mend();
  }, true);
  const hint = (message) => {
    const box = document.querySelector('#upload-hint');
    if (box) { box.textContent = message; box.hidden = !message; box.style.display = message ? '' : 'none'; }
  };
  const tooBig = (files) => {
    for (const file of files || []) {
      if (file.size > LIMIT_MB * 1024 * 1024) {
        return TOO_BIG.replace('{size}', (file.size / 1048576).toFixed(1)).replace('{limit}', LIMIT_MB);
      }
    }
    return '';
  };
  const guard = (e, files) => {
    const message = tooBig(files);
    hint(message);
    if (message) { e.stopImmediatePropagation(); e.preventDefault(); }
  };
  document.addEventListener('drop', (e) => {
    if (e.target.closest && e.target.closest('#input-image')) guard(e, e.dataTransfer && e.dataTransfer.files);
  }, true);
  document.addEventListener('change', (e) => {
    if (e.target.closest && e.target.closest('#input-image') && e.target.type === 'file') {
      guard(e, e.target.files);
      if (e.defaultPrevented) e.target.value = '';
    }
  }, true);
}
"""

#: The instant a new photo is chosen (or removed), the old photo's results leave the page: a result is never
#: shown beside a photo it does not belong to. The server's answer brings the new ones.
NEW_PHOTO_JS = """
(...inputs) => {
  const results = document.querySelector('#results');
  if (results) results.classList.add('is-stale');
  const sentence = document.querySelector('#sentence');
  if (sentence) sentence.classList.toggle('is-waiting', Boolean(inputs[0]));
  return inputs;
}
"""

#: After an answer: the results show again, and on a narrow screen the sentence and panels come into view.
SHOWN_JS = """
() => {
  const results = document.querySelector('#results');
  if (results) results.classList.remove('is-stale');
  const sentence = document.querySelector('#sentence');
  if (sentence) sentence.classList.remove('is-waiting');
  if (sentence && window.innerWidth < 768) sentence.scrollIntoView({behavior: 'smooth', block: 'start'});
}
"""

#: Once the zip exists, the browser downloads it: one click on "Download everything" is enough.
DOWNLOAD_JS = """
async () => {
  for (let tries = 0; tries < 150; tries++) {
    const link = document.querySelector('#archive a[download]');
    if (link) { link.click(); return; }
    await new Promise(next => setTimeout(next, 20));
  }
}
"""


def page_script(upload_limit_mb: float) -> str:
    """The page script with the upload limit it announces."""
    return PAGE_JS % {"limit": json.dumps(upload_limit_mb), "too_big": json.dumps(text.UPLOAD_TOO_BIG)}
