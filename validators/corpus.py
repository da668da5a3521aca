# ruff: noqa: RUF001  (ambiguous characters are the point of an adversarial corpus)
"""Built-in text corpora for the checks.

``ADVERSARIAL``: texts chosen to expose tokenizer differences (Unicode normalization forms, accents and
combining marks, case, emoji sequences, CJK, right-to-left scripts, control characters and unusual
whitespace, very long words, URLs and code). Each entry is ``(category, text)``.

``PROBE``: ordinary English sentences of varied length and topic, used to read attention maps; the
head-collapse defaults were calibrated on them (docs/validators.md).
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from controlplane.errors import InputError

_NFC_WORDS = ("café", "naïve", "Straße", "Ångström", "jalapeño", "façade", "Zoë", "Dvořák", "Łódź", "résumé")

ADVERSARIAL: tuple[tuple[str, str], ...] = (
    *[("nfc", w) for w in _NFC_WORDS],
    *[("nfd", unicodedata.normalize("NFD", w)) for w in _NFC_WORDS],
    ("nfkc", "ﬁnance ﬂow ① ² ℌ ㎏ ＦＵＬＬＷＩＤＴＨ ｶﾀｶﾅ"),
    ("accents", "Les élèves étudient l'histoire de l'art à Paris, où Hélène a déjà mangé une crème brûlée."),
    ("accents", "São Paulo, Málaga, Reykjavík, Kraków, Ħamrun, Ærøskøbing, İstanbul, Şanlıurfa"),
    ("combining", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇ text with stacked combining marks"),
    ("combining", "e\u0301 a\u0300 o\u0302 n\u0303 u\u0308 c\u0327 i\u0304 stand-alone combining accents"),
    ("case", "HELLO World hElLo wORLD McDonald iPhone eBay GmbH NASA's JavaScript"),
    ("case", "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG"),
    ("case", "ǅungla ǈubljana ǋegoš ΣΊΣΥΦΟΣ ΌΣΟΣ İI ıi"),
    ("emoji", "I love it 😍😂👍🏽 so much 🎉🎉🎉"),
    ("emoji", "family 👨\u200d👩\u200d👧\u200d👦 and 👩🏿\u200d💻 and 🏳️\u200d🌈 and 🧑🏻\u200d🤝\u200d🧑🏾"),
    ("emoji", "flags 🇫🇷🇯🇵🇧🇷 keycaps 1️⃣#️⃣ variation ❤️ vs ❤︎"),
    ("cjk", "東京は日本の首都です。人工知能の研究が進んでいる。"),
    ("cjk", "我喜欢自然语言处理和机器学习。中文没有空格。"),
    ("cjk", "한국어 문장은 띄어쓰기를 사용합니다. 안녕하세요"),
    ("cjk", "ひらがなとカタカナと漢字が混ざった文"),
    ("rtl", "مرحبا بالعالم، هذه جملة باللغة العربية مع أرقام ١٢٣"),
    ("rtl", "שלום עולם, זה משפט בעברית עם ניקוד: שָׁלוֹם"),
    ("rtl", "mixed \u202eright-to-left override\u202c and \u200fRLM marks \u05d0\u05d1 abc"),
    ("control", "tab\tseparated\tvalues\r\nwindows line\x0bvertical\x0cform feed"),
    ("control", "null\x00byte and bell\x07 and escape\x1b[31m red"),
    ("whitespace", "no\u00a0break\u2009thin\u200bzero-width\u3000ideographic\u2028line\u2029para\ufeffbom"),
    ("whitespace", "   leading and trailing spaces   \n\n\n   "),
    ("whitespace", "soft\u00adhyphen and word\u2060joiner and zero\u200cwidth\u200djoiners"),
    ("long-word", "Pneumonoultramicroscopicsilicovolcanoconiosis " * 2),
    ("long-word", "a" * 120),
    ("long-word", "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft"),
    ("long-word", "x" * 99 + " " + "y" * 101),
    ("url", "https://example.com/path/to/page?query=value&other=123#fragment"),
    ("url", "Contact admin@example.org or visit http://sub.domain.co.uk:8080/a_b-c.html"),
    ("url", "https://de.wikipedia.org/wiki/Stra%C3%9Fe and ftp://files.example.net/~user/"),
    ("code", "def f(x: int) -> int:\n    return x ** 2 + 1  # square"),
    ("code", "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }"),
    ("code", "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;"),
    ("code", '{"key": [1, 2.5e-3, null, true], "nested": {"a": "b"}} <div class="x">&amp;</div>'),
    ("numbers", "3.14159 1,000,000 -42 1e10 0x1F 12:30 2024-01-15 $99.99 50% №7"),
    ("mixed", "ŧħë qüïçk bröwñ føx 東京 🦊 مرحبا GmbH https://x.io"),
    ("punctuation", "Wait... what?! «quotes» „German“ ‘single’ — em-dash – en-dash … ellipsis"),
)

PROBE: tuple[str, ...] = (
    "A man is playing a guitar on the street.",
    "The new movie is awesome and everyone should see it.",
    "A woman is slicing an onion in the kitchen.",
    "The cat sits outside on the warm stone wall.",
    "Quantum chromodynamics describes the strong interaction between quarks and gluons.",
    "The stock market fell sharply after the central bank raised interest rates again.",
    "She forgot her umbrella, so she got soaked walking home in the rain.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Can you recommend a good restaurant near the train station?",
    "The committee will announce its decision after reviewing all the applications next week.",
    "He has been learning to play the piano for three years and practices every evening.",
    "Machine learning models can reflect the biases present in their training data.",
    "The river flooded the valley after weeks of heavy rain in the mountains.",
    "Please remember to turn off the lights when you leave the office.",
    "Ancient Rome was founded, according to legend, by the twins Romulus and Remus.",
    "Our flight was delayed by two hours because of a technical problem with the engine.",
    "The children built a sandcastle on the beach while their parents read books.",
    "Vaccines train the immune system to recognize and fight specific pathogens.",
    "I would rather stay at home tonight and watch an old film.",
    "The software update fixed several security vulnerabilities and improved battery life.",
    "A young boy is riding a bicycle down a steep hill.",
    "The orchestra performed Beethoven's ninth symphony to a sold-out audience.",
    "Electric cars are becoming cheaper as battery technology improves.",
    "The detective examined the footprints near the broken window very carefully.",
    "Two dogs are running through a field of tall grass.",
    "Coffee prices rose this year because of droughts in several producing countries.",
    "The library extended its opening hours during the exam period.",
    "Mount Everest is the highest mountain above sea level on Earth.",
    "The teacher asked the students to write an essay about their summer holidays.",
    "Researchers discovered a new species of frog in the rainforest of Ecuador.",
    "If the weather is nice tomorrow, we will go hiking in the national park and have a picnic by the lake.",
    "The contract must be signed by both parties before the end of the month, otherwise the offer expires.",
)


def read_corpus(path: Path | str) -> list[str]:
    """A user corpus: one text per line, UTF-8; blank lines ignored. InputError when missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"corpus file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"corpus file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"cannot read corpus file {path}: {exc.strerror}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise InputError(f"corpus file {path} is empty: give one text per line")
    return lines
