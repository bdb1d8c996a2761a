"""The lecture texts the zoo's claims come from, by title: a spec or claim cites a file name
(`004_5313b15ce488b0b1.txt`), and what people see names the lecture as well."""
from __future__ import annotations

import re

LECTURES = {
    "000_12de7eca9a6f8a84.txt": "Chương 3: Giới thiệu về mạng tích chập (Vietnamese course chapter on CNNs)",
    "001_f722223972e2077b.txt": "Tôn Quang Toại, Deep Learning: Các kiến trúc CNN (1), HUFLIT",
    "002_7bcb16c13aee3109.txt": "Anton Osokin, Свёрточные сети (Convolutional networks), HSE, 2017",
    "003_814164eb272a992a.txt": "[Paper Explain] ImageNet Classification with Deep Convolutional Neural Networks (Vietnamese)",
    "004_5313b15ce488b0b1.txt": "Hwann-Tzong Chen, Convolutional Neural Networks, National Tsing Hua University, 2017",
}
_FILE = re.compile(r"(?:seed )?\b(\d{3}_[0-9a-f]{16}\.txt)\b")


def cite(text: str) -> str:
    """`text` with each lecture file name preceded by its title: "Title" (file)."""
    return _FILE.sub(lambda m: f"\"{LECTURES[m.group(1)]}\" ({m.group(1)})" if m.group(1) in LECTURES else m.group(0), text)
