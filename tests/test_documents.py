import codecs
import io
import json

import pytest

from rag.documents import decode_text, discover, load_file
from rag.errors import LoadError, PartlyLoaded
from rag.formats import html_to_markdown


def test_markdown_sections_keep_heading_path(write):
    path = write("m.md", "Intro text.\n\n# Title\n\nBody one.\n\n```\n# not a heading\n```\n\n## Sub\n\nBody two.\n")
    docs = load_file(path, "m.md")
    assert [d.headings for d in docs] == [(), ("Title",), ("Title", "Sub")]
    assert "# not a heading" in docs[1].text
    assert docs[2].text == "Body two."


def test_markdown_bold_markers_are_dropped_as_html_drops_them(write):
    # "**Where to catch the buses:**" is the label of the table under it; answers are quoted without asterisks
    text = (
        "# **Works**\n\n**Where to catch the buses:**\n\n| Station | Stop |\n|---|---|\n| Millbeck | M2 |\n\n`2**8`\n"
    )
    (doc,) = load_file(write("works.md", text), "works.md")
    assert doc.headings == ("Works",)
    assert doc.text == "Where to catch the buses:\n| Station | Stop |\n|---|---|\n| Millbeck | M2 |\n`2**8`"


def test_markdown_bold_markers_are_dropped_between_chinese_characters(write):
    # Chinese has no spaces around a bold word; the markers were kept and quoted in answers
    (doc,) = load_file(
        write("指南.md", "三条线路：**海岸线**、**山谷线**以及**机场线**（Airport Link）。\n"), "指南.md"
    )
    assert doc.text == "三条线路：海岸线、山谷线以及机场线（Airport Link）。"


def test_html_keeps_visible_text_only(write):
    html = (
        "<html><head><title>T</title><style>.x{color:red}</style><script>var secret='S3CRET';</script></head>"
        "<body><nav>Menu</nav><h1>Guide</h1><p>Press <b>Reset</b> for 5 s.</p><script>track()</script>"
        "<noscript>enable js</noscript><h2>Table</h2><table><tr><td>E1</td><td>No power</td></tr></table></body></html>"
    )
    docs = load_file(write("p.html", html), "p.html")
    text = "\n".join(d.text for d in docs)
    assert "Press Reset for 5 s." in text  # inline tags do not break the sentence
    for hidden in ("S3CRET", "color:red", "track()", "enable js", "Menu"):
        assert hidden not in text
    assert docs[-1].headings == ("Guide", "Table")
    assert "E1 | No power" in docs[-1].text


def test_html_title_used_when_no_h1():
    assert html_to_markdown("<html><head><title>Only title</title></head><body><p>x</p></body></html>").startswith(
        "# Only title"
    )


def test_html_lays_out_lists_rows_and_headings_as_markdown():
    html = (
        "<h2>Fees <small>2026</small><br>EU</h2><p>Intro<!-- hidden --></p><ul><li>one<li>two</ul>"
        "<table><tr><th>Size</th><td>Small</td></tr><tr><td>Price</td><td>6.95</td></tr></table>"
    )
    assert html_to_markdown(html) == "## Fees 2026 EU\n\nIntro\n\n- one\n- two\n\n| Size | Small\n\n| Price | 6.95"


def test_html_nested_deeper_than_python_recurses_is_read():
    # a hostile or generated page: 20,000 nested elements (read in one walk, in time linear in the page)
    depth = 20_000
    html = "<div>" * depth + "<span>" * depth + "deep text" + "</span>" * depth + "</div>" * depth
    assert html_to_markdown(html) == "deep text"


def test_pdf_pages_are_numbered(tmp_path):
    from reportlab.pdfgen import canvas

    path = tmp_path / "two.pdf"
    c = canvas.Canvas(str(path))
    c.drawString(50, 750, "first page words")
    c.showPage()
    c.drawString(50, 750, "second page words")
    c.showPage()
    c.save()
    docs = load_file(path, "two.pdf")
    assert [(d.page, d.text) for d in docs] == [(1, "first page words"), (2, "second page words")]


def test_pdf_running_headers_and_footers_are_dropped(tmp_path):
    # left in, a footer lands mid-sentence wherever a page breaks ("... threatening, abusive Acme Rail - page 1")
    from reportlab.pdfgen import canvas

    path = tmp_path / "conditions.pdf"
    c = canvas.Canvas(str(path))
    bodies = [["Tickets are not transferable.", "Keep your ticket."], ["Refunds take 5 days."], ["Pets travel free."]]
    for number, body in enumerate(bodies, start=1):
        c.drawString(50, 800, "Acme Rail Conditions of Carriage")
        for row, line in enumerate(body):
            c.drawString(50, 700 - 20 * row, line)
        c.drawString(50, 40, f"Acme Rail Ltd - page {number} of 3")
        c.showPage()
    c.save()
    docs = load_file(path, "conditions.pdf")
    assert [d.text for d in docs] == [
        "Tickets are not transferable.\nKeep your ticket.",
        "Refunds take 5 days.",
        "Pets travel free.",
    ]


def _pdf_bytes(text="secret words"):
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(50, 750, text)
    c.showPage()
    c.save()
    return buf.getvalue()


def test_encrypted_pdf_is_refused_with_reason(write):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(_pdf_bytes())))
    writer.encrypt(user_password="pw", owner_password="owner")
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(LoadError, match="password"):
        load_file(write("enc.pdf", buf.getvalue()))


def test_truncated_pdf_is_refused(write):
    data = _pdf_bytes()
    with pytest.raises(LoadError, match="(?i)pdf"):
        load_file(write("cut.pdf", data[: len(data) // 3]))


def test_not_a_pdf(write):
    with pytest.raises(LoadError, match="not a PDF"):
        load_file(write("fake.pdf", b"hello, I am text"))


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"   \n\n  ", "empty"),
        (bytes(range(256)) * 20, "binary"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 100, "binary"),
    ],
)
def test_unreadable_text_files(write, data, reason):
    with pytest.raises(LoadError, match=reason):
        load_file(write("bad.txt", data))


def test_encodings(write):
    text = "Café — naïve résumé costs 3€\nsecond line"
    assert load_file(write("bom.txt", codecs.BOM_UTF8 + text.encode()))[0].text == text
    assert load_file(write("crlf.txt", text.replace("\n", "\r\n").encode()))[0].text == text
    assert load_file(write("u16.txt", text.encode("utf-16")))[0].text == text
    assert load_file(write("cp1252.txt", text.encode("cp1252")))[0].text == text
    zh = "如何重置路由器？请按住复位键十秒钟，直到指示灯闪烁。"
    assert load_file(write("gbk.txt", zh.encode("gbk")))[0].text == zh
    assert decode_text("路由器".encode("gbk")) == "路由器"  # short texts too


def test_utf8_with_a_few_stray_bytes_is_read_as_utf8_not_refused_or_garbled(write):
    en = "Café — naïve résumé costs 3€\nsecond line"
    assert load_file(write("stray.txt", en.encode() + b"\x81"))[0].text == en + "\ufffd"  # not cp1252 mojibake
    zh = "如何重置路由器？请按住复位键十秒钟，直到指示灯闪烁。" * 3  # was refused: "unknown text encoding"
    assert load_file(write("stray-zh.md", zh.encode()[:-1] + b"\xff\n"))[0].text.startswith(zh[:-1])


def test_no_column_of_a_record_is_dropped(write):
    # "a" is an answer beside "q" only; a text record keeps its other fields; cells past the header are kept
    assert load_file(write("t.csv", "a,b,c\n1,2,3\n"))[0].text == "a: 1\nb: 2\nc: 3"
    text = load_file(write("t.json", json.dumps([{"id": 7, "text": "Hello.", "url": "https://x.example"}])))[0].text
    assert text == "Hello.\nurl: https://x.example"
    ragged = load_file(write("points.csv", "city,address\nOslo,Gate 5,Mon-Fri 9-17\n"))[0].text
    assert ragged == "city: Oslo\naddress: Gate 5\nMon-Fri 9-17"
    # an FAQ answer in the last column with a comma nobody quoted was split into its first clause, the question
    # as a field, and the rest: the cells past the header are the rest of the answer
    faq = load_file(write("faq.csv", "question,answer\nCan I take the bike on the metro?,Folded or not, yes.\n"))
    assert faq[0].text == "Q: Can I take the bike on the metro?\nA: Folded or not, yes."


def test_a_file_the_walk_may_not_look_at_is_skipped_not_fatal(tmp_path, monkeypatch):
    from pathlib import Path

    (tmp_path / "ok.md").write_text("# OK\n\nFine.\n", "utf-8")
    (tmp_path / "evil.md").write_text("# Evil\n", "utf-8")
    real = Path.is_file

    def is_file(self):
        if self.name == "evil.md":  # as a link into a folder this user may not enter
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "is_file", is_file)
    files, skipped = discover([tmp_path])
    assert [f.path.name for f in files] == ["ok.md"]
    assert [(s.source.split("/")[-1], s.reason) for s in skipped] == [("evil.md", "cannot be read: Permission denied")]


def test_faq_records_in_all_shapes(write):
    rec = [{"question": "Q1?", "answer": "A1."}, {"q": "Q2?", "a": "A2."}]
    assert [d.text for d in load_file(write("a.json", json.dumps(rec)))] == ["Q: Q1?\nA: A1.", "Q: Q2?\nA: A2."]
    assert len(load_file(write("b.json", json.dumps({"faqs": rec})))) == 2
    assert load_file(write("c.json", json.dumps({"How?": "Like this."})))[0].text == "Q: How?\nA: Like this."
    jsonl = "\n".join(json.dumps(r, ensure_ascii=False) for r in [{"question": "问?", "answer": "答。"}]) + "\n\n"
    assert load_file(write("d.jsonl", jsonl))[0].text == "Q: 问?\nA: 答。"
    docs = load_file(write("e.csv", "question,answer\nQ?,A.\n"))
    assert docs[0].text == "Q: Q?\nA: A." and docs[0].meta == {"record": 1} and docs[0].headings == ()


def test_a_titled_text_record_is_its_text_under_its_title_not_a_question_and_answer(write):
    # {"title", "text"} was read as "Q: title / A: text", and a short one was quoted with its labels
    # ("Q: Campanha station; A: Inside Campanha railway station ...")
    records = [{"title": "Campanha station", "text": "Inside the railway station, exit 3. Open 7:00-22:00.", "id": 3}]
    (doc,) = load_file(write("stations.json", json.dumps(records)))
    assert (doc.text, doc.headings) == ("Inside the railway station, exit 3. Open 7:00-22:00.", ("Campanha station",))
    (faq,) = load_file(write("faq.json", json.dumps([{"question": "When do you open?", "answer": "At 7:00."}])))
    assert (faq.text, faq.headings) == ("Q: When do you open?\nA: At 7:00.", ())


def test_a_table_row_is_headed_by_what_its_file_lists(write):
    """A CSV or JSON row of named columns is about what its file lists: "Where's your service point in
    Rotterdam?" reads the Rotterdam row under "service points", as a Markdown section reads under its heading."""
    rows = load_file(write("kb/service-points.csv", "city,address\nRotterdam,Westblaak 45\nAntwerp,Meir 88\n"))
    assert [(d.text, d.headings) for d in rows] == [
        ("city: Rotterdam\naddress: Westblaak 45", ("service points",)),
        ("city: Antwerp\naddress: Meir 88", ("service points",)),
    ]
    shops = load_file(write("kb/shop_hours.json", json.dumps([{"shop": "Berlin", "sunday": "11-15"}, "a text"])))
    assert [d.headings for d in shops] == [("shop hours",), ()]  # a text record is no row
    assert load_file(write("kb/2024.csv", "city,address\nRotterdam,Westblaak 45\n"))[0].headings == ()


def test_malformed_jsonl_names_the_line_and_costs_only_itself(write):
    # a line cut short (an editor, a crash mid-append) skipped the whole FAQ file: its good records are kept
    with pytest.raises(PartlyLoaded, match="line 2 is not valid JSON") as caught:
        load_file(write("bad.jsonl", '{"question": "a", "answer": "b"}\n{oops\n{"q": "c", "a": "d"}\n'))
    assert [d.text for d in caught.value.documents] == ["Q: a\nA: b", "Q: c\nA: d"]
    with pytest.raises(LoadError, match="line 1 is not valid JSON") as caught:
        load_file(write("worse.jsonl", "{oops\n"))
    assert not isinstance(caught.value, PartlyLoaded)


def test_json_nested_too_deeply_says_so(write):
    for name in ("deep.json", "deep.jsonl"):
        with pytest.raises(LoadError, match="nest"):
            load_file(write(name, "[" * 100_000 + "]" * 100_000), name)


def test_a_csv_cell_longer_than_the_csv_modules_default_limit_is_read(write):
    answer = "Long policy text. " * 10_000  # 180 KB in one cell; csv stops at 128 KiB unless told otherwise
    docs = load_file(write("policy.csv", f"question,answer\nWhat is the policy?,{answer}\n"))
    assert docs[0].text.startswith("Q: What is the policy?\nA: Long policy text.") and len(docs[0].text) > 180_000


def test_json_without_faq_fields(write):
    with pytest.raises(LoadError, match="record 1"):
        load_file(write("x.json", json.dumps([{"n": 1}])))


def test_docx(write, tmp_path):
    import docx

    d = docx.Document()
    d.add_heading("Policy", level=1)
    d.add_paragraph("Returns within 30 days.")
    path = tmp_path / "p.docx"
    d.save(str(path))
    docs = load_file(path)
    assert docs[0].headings == ("Policy",) and docs[0].text == "Returns within 30 days."
    with pytest.raises(LoadError, match="damaged"):
        load_file(write("broken.docx", b"PK\x03\x04 not really a zip"))


def test_html_table_cells_stay_on_their_row_and_definition_lists_pair_term_and_definition(write):
    # a <br> or <p> inside a cell broke its row in two, and the rows after it lost their header; a <dt> and
    # its <dd> were two unrelated lines ("R-17" / "Firmware image is damaged.")
    html = (
        "<table><tr><th>Day</th><th>Hours</th></tr><tr><td>Monday</td><td>9-17</td></tr>"
        "<tr><td>Saturday</td><td><p>10-14<br>by appointment</p></td></tr><tr><td>Sunday</td><td>closed</td></tr>"
        "</table><dl><dt>R-17</dt><dd>Firmware image is damaged.</dd><dt>R-40</dt><dd><p>Overheating.</p></dd></dl>"
    )
    (doc,) = load_file(write("hours.html", html))
    assert doc.text == (
        "| Day | Hours\n| Monday | 9-17\n| Saturday | 10-14 by appointment\n| Sunday | closed\n"
        "- R-17: Firmware image is damaged.\n- R-40: Overheating."
    )


def test_docx_table_stays_in_place_as_a_markdown_table(tmp_path):
    # python-docx lists tables apart from paragraphs: appended at the end, under the last heading, with rows
    # joined as prose, "Help | Notice Ramp | None" was read as one sentence of the wrong section
    import docx

    d = docx.Document()
    d.add_heading("Notice needed", level=1)
    d.add_paragraph("The table below shows the notice we need.")
    table = d.add_table(rows=3, cols=2)
    for r, cells in enumerate([("Help", "Notice"), ("Ramp | lift", "None"), ("Taxi", "24\nhours")]):
        for c, value in enumerate(cells):
            table.cell(r, c).text = value
    d.add_heading("Wheelchairs", level=1)
    d.add_paragraph("Spaces take chairs up to 70 cm wide.")
    path = tmp_path / "guide.docx"
    d.save(str(path))
    notice, chairs = load_file(path)
    assert notice.headings == ("Notice needed",)
    assert notice.text == (
        "The table below shows the notice we need.\n"
        "| Help | Notice |\n|---|---|\n| Ramp / lift | None |\n| Taxi | 24 hours |"
    )
    assert chairs.headings == ("Wheelchairs",) and chairs.text == "Spaces take chairs up to 70 cm wide."


def test_plain_text_laid_out_in_columns_is_read_as_a_table(write):
    text = (
        "Handling fees:\n"
        "Value of the item        Handling fee\n"
        "Under £50                £3\n"
        "Over £250                £20\n"
        "\n"
        "One.  Two.\nThree.  Four.\nFive.  Six.\n"  # double spaces after full stops, not columns
    )
    (doc,) = load_file(write("fees.txt", text))
    assert doc.text == (
        "Handling fees:\n| Value of the item | Handling fee |\n|---|---|\n| Under £50 | £3 |\n| Over £250 | £20 |\n"
        "\nOne.  Two.\nThree.  Four.\nFive.  Six.\n"
    )


def test_docx_that_unpacks_past_the_limit_is_refused_unopened(tmp_path, monkeypatch):
    import zipfile

    import docx

    from rag import formats

    d = docx.Document()
    d.add_paragraph("hello")
    plain = tmp_path / "plain.docx"
    d.save(str(plain))
    bomb = tmp_path / "bomb.docx"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "word/document.xml":
                data = data.replace(b"hello", b"hello" + b" " * 3 * 2**20)  # 3 MiB of spaces, 3 KB zipped
            out.writestr(info.filename, data)
    monkeypatch.setattr(formats, "MAX_UNPACKED_BYTES", 2**20)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(LoadError, match="unpacks to 3 MiB, over the 1 MiB limit"):
        load_file(bomb)
    assert load_file(plain)[0].text == "hello"


def test_discover_skips_hidden_and_reports_unsupported(tmp_path, write):
    write("kb/a.md", "# A\n\ntext")
    write("kb/.hidden.md", "secret")
    write("kb/.git/config", "x")
    write("kb/img.png", b"\x89PNG")
    write("kb/sub/b.txt", "b")
    files, skipped = discover([tmp_path / "kb"])
    assert sorted(f.path.name for f in files) == ["a.md", "b.txt"]
    assert len(skipped) == 1 and skipped[0].source.endswith("img.png") and "unsupported" in skipped[0].reason


def test_discover_a_link_to_nothing(tmp_path):
    (tmp_path / "loop.md").symlink_to(tmp_path / "loop.md")
    with pytest.raises(LoadError, match="symbolic link to nothing"):
        discover([tmp_path / "loop.md"])


def test_discover_missing_path(tmp_path):
    with pytest.raises(LoadError, match="does not exist"):
        discover([tmp_path / "nope"])
