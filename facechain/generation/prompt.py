"""The one prompt builder (generate, inpaint, try-on): trigger word + identity tags + the style prompt.

``{trigger}`` in a style prompt becomes the identity's trigger word and ``{tags}`` its identity
tags; a prompt without ``{trigger}`` gets "trigger, tags, " in front (CLIP reads only 77 tokens,
so the identity goes first). Tags already named by the style are not repeated.

Which tags: only those that describe the *person* (hair, face, mouth, skin, smile, glasses, beard,
...) may reach a generation prompt. Tags about the photo or the background ("white background",
"facing viewer", "monochrome", "solo") describe the training photos, not the person; they stay in
the training captions only — in a prompt they would drag every style (cyberpunk, underwater, a
template) back towards the preprocessed training photos.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..styles.style import Style

#: Words that mark a tag as describing the person (the tag is kept if it contains one of them).
IDENTITY_WORDS = (
    "hair", "bald", "bangs", "ponytail", "braid", "fringe", "face", "freckle", "mole", "dimple", "mouth", "lip",
    "teeth", "smile", "smiling", "grin", "skin", "complexion", "glasses", "eyeglasses", "spectacles", "beard",
    "mustache", "moustache", "stubble", "sideburn", "goatee", "eyebrow", "wrinkle", "earring", "piercing",
)
#: Words that mark a tag as describing the photo, whatever else it says ("hair over white background").
PHOTO_WORDS = ("background", "viewer", "monochrome", "greyscale", "grayscale", "photo", "portrait", "solo",
               "looking at", "facing", "upper body", "simple", "realistic", "blurry", "lowres", "border", "frame")


def identity_tags(tags) -> list[str]:
    """The tags that describe the person, in their order (see the module docstring)."""
    out = []
    for tag in tags or ():
        t = str(tag).strip()
        low = t.lower().replace("_", " ")
        if not t or any(w in low for w in PHOTO_WORDS):
            continue
        if any(re.search(rf"\b{re.escape(w)}", low) for w in IDENTITY_WORDS):
            out.append(t)
    return out


@dataclass(frozen=True)
class PromptPair:
    prompt: str
    negative_prompt: str


def _join(*parts: str) -> str:
    return ", ".join(p.strip().strip(",").strip() for p in parts if p and p.strip().strip(","))


def _tidy(text: str) -> str:
    items = [t.strip() for t in text.split(",")]
    return ", ".join(t for t in items if t)


def build_prompt(style: Style, trigger_word: str, tags: list[str] | tuple[str, ...] = (),
                 negative_prompt: str | None = None) -> PromptPair:
    """Compose the positive and negative prompts for ``style`` and one identity (only identity tags)."""
    body = style.prompt
    lowered = body.lower()
    fresh_tags = [t for t in identity_tags(tags) if t.lower() not in lowered]
    tag_text = ", ".join(fresh_tags)
    if "{trigger}" in body:
        if "{tags}" not in body and tag_text:
            body = body.replace("{trigger}", "{trigger}, {tags}", 1)
        prompt = body.replace("{trigger}", trigger_word.strip()).replace("{tags}", tag_text)
    else:
        prompt = _join(trigger_word, tag_text, body.replace("{tags}", ""))
    negative = style.negative if negative_prompt is None else negative_prompt
    words = set(trigger_word.lower().replace(",", " ").split())
    if words & {"man", "woman"} and "children" not in negative.lower():
        # The reference keeps adult identities adult (its trigger words are "a mature man", ...).
        negative = _join(negative, "children")
    return PromptPair(_tidy(prompt), _tidy(negative))
