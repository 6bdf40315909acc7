"""Regenerate the binary documents of the sample knowledge base (a multi-page PDF and a Word file).

Run from the repository root: `python scripts/make_sample_binaries.py` (or `make corpus`). The outputs are
committed, so indexing never needs reportlab. Output is deterministic (fixed dates, no random ids).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "corpora"

PDF_PAGES = [
    (
        "HomeHub R7 Technical Reference - Specifications",
        [
            "Model NH-R7. Wi-Fi 6 (802.11ax), dual band, 4x4 MU-MIMO.",
            "Processor: quad-core 1.7 GHz. Memory: 512 MB RAM, 256 MB flash.",
            "Ports: one 2.5 Gbit/s WAN port (yellow) and four 1 Gbit/s LAN ports.",
            "Dimensions: 220 x 160 x 48 mm. Weight: 610 g.",
            "Typical power consumption: 9 W; maximum 18 W.",
        ],
    ),
    (
        "Advanced settings",
        [
            "Port forwarding: up to 32 rules under Settings > Network > Port forwarding.",
            "Guest Wi-Fi: at most 16 guest devices at a time; guest access can expire after 1, 4 or 24 hours.",
            "Parental controls: up to 10 profiles, each with its own bedtime schedule and content filter.",
            "DNS: the router uses the DNS servers of your internet provider unless you enter custom ones.",
            "VPN server: WireGuard, up to 5 simultaneous clients.",
        ],
    ),
    (
        "Safety and environment",
        [
            "Operating temperature: 0 to 40 degrees Celsius. Storage temperature: -20 to 60 degrees Celsius.",
            "Operating humidity: 10% to 90%, non-condensing.",
            "Keep at least 10 cm of free space around the router for ventilation.",
            "Use only the supplied power adapter PA-1220 (12 V, 2 A).",
        ],
    ),
    (
        "Regulatory information and support",
        [
            "The HomeHub R7 complies with the EU Radio Equipment Directive 2014/53/EU.",
            "The full declaration of conformity is available at nimbushome.example/doc/NH-R7.",
            "For support, see the support channels list or open the Nimbus Home app.",
        ],
    ),
]

ZH_PAGE = (
    "HomeHub R7 技术参考（中文摘要）",
    [
        "端口转发：最多 32 条规则。",
        "访客网络：最多同时连接 16 台访客设备。",
        "工作温度：0 至 40 摄氏度。",
    ],
)


def make_pdf(path: Path) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    c = canvas.Canvas(str(path), pagesize=A4, invariant=1)  # invariant: byte-identical output on every run
    c.setTitle("HomeHub R7 Technical Reference")
    width, height = A4
    for number, (title, lines) in enumerate(PDF_PAGES + [ZH_PAGE], start=1):
        font = "STSong-Light" if number == len(PDF_PAGES) + 1 else "Helvetica"
        c.setFont(font if font != "Helvetica" else "Helvetica-Bold", 16)
        c.drawString(50, height - 70, title)
        c.setFont(font, 11)
        y = height - 110
        for line in lines:
            c.drawString(50, y, line)
            y -= 20
        c.setFont("Helvetica", 9)
        c.drawString(width / 2 - 20, 30, f"Page {number}")
        c.showPage()
    c.save()


def make_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    import datetime as dt

    document.core_properties.created = dt.datetime(2026, 1, 1)
    document.core_properties.modified = dt.datetime(2026, 1, 1)
    document.add_heading("Nimbus service centres and repairs", level=1)
    document.add_paragraph(
        "Devices under warranty are repaired free of charge. Out-of-warranty repairs of a HomeHub R7 cost a "
        "flat fee of EUR 39 plus parts; camera repairs cost a flat fee of EUR 29 plus parts."
    )
    document.add_heading("Service centres", level=2)
    document.add_paragraph("Eindhoven (NL): Kastanjelaan 400, open Monday to Saturday 09:00-18:00.")
    document.add_paragraph("Antwerp (BE): Meir 88, open Tuesday to Saturday 10:00-18:00.")
    document.add_paragraph("Munich (DE): Leopoldstrasse 21, open Monday to Friday 09:00-17:00.")
    document.add_heading("Turnaround", level=2)
    document.add_paragraph(
        "A repair takes 5 business days on average from the day the device arrives. Walk-in customers at a "
        "service centre can get a loan router for up to 14 days while theirs is repaired."
    )
    document.save(str(path))


if __name__ == "__main__":
    make_pdf(ROOT / "manuals" / "homehub-r7-technical-reference.pdf")
    make_docx(ROOT / "company" / "service-centres.docx")
    print("wrote", ROOT / "manuals" / "homehub-r7-technical-reference.pdf", ROOT / "company" / "service-centres.docx")
