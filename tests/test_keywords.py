from rag.keywords import KeywordIndex, joined_words, to_simplified, tokenize


def test_tokenize_english_codes_and_numbers():
    assert tokenize("Reset the LX-300 router") == ["reset", "lx-300", "lx", "300", "router"]
    assert "14.90" in tokenize("costs 14.90 euros")
    assert "192.168.77.1" in tokenize("open 192.168.77.1")
    assert tokenize("the routers") == ["router"]  # stop word dropped, plural stemmed


def test_tokenize_chinese_segments_words_and_drops_stop_words():
    tokens = tokenize("如何重置路由器？")
    assert "重置" in tokens and "路由器" in tokens
    assert "如何" not in tokens


def test_keyword_index_finds_chinese_and_english(tmp_path):
    texts = ["按住复位键 12 秒即可恢复出厂设置。", "Express shipping costs 14.90 euros.", "退款在 3 个工作日内完成。"]
    index = KeywordIndex.build(texts)
    _, ids = index.search("怎么恢复出厂设置", 2)
    assert ids[0] == 0
    _, ids = index.search("how much is express shipping", 2)
    assert ids[0] == 1
    index.save(tmp_path / "bm25")
    again = KeywordIndex.load(tmp_path / "bm25")
    assert list(again.search("退款", 1)[1]) == [2]


def test_keyword_index_no_overlap_and_empty():
    index = KeywordIndex.build(["alpha beta"])
    scores, ids = index.search("zzz unknown", 5)
    assert len(ids) == 0 and len(scores) == 0
    assert len(KeywordIndex.build([]).search("alpha", 3)[1]) == 0


def test_texts_without_any_token(tmp_path):
    index = KeywordIndex.build(["!!!", "。。", "the a"])
    assert len(index) == 3 and len(index.search("anything", 3)[1]) == 0
    index.save(tmp_path / "k")
    assert len(KeywordIndex.load(tmp_path / "k")) == 3


def test_traditional_and_simplified_chinese_match_each_other():
    assert to_simplified("退貨須於七天內申請") == "退货须于七天内申请"
    assert to_simplified("Reset 14.90 €") == "Reset 14.90 €"  # nothing to convert: the same string
    assert tokenize("如何申請退貨？") == tokenize("如何申请退货？")
    texts = [
        "退货须在签收后七天内申请。",
        "門市營業時間為每日上午十點至晚上九點。",
        "Express shipping costs 14.90 euros.",
    ]
    index = KeywordIndex.build(texts)
    assert index.search("退貨要在幾天內申請", 1)[1][0] == 0  # Traditional question, Simplified passage
    assert index.search("门市营业时间", 1)[1][0] == 1  # and the other way round


def test_words_a_question_spells_apart_match_the_one_word_the_documents_use():
    """ "set up" finds "setup", "e-mail" finds "email", "log in" finds "login": two neighbouring words of the
    question join when the knowledge base has them as one token, and nothing joins that it lacks."""
    texts = [
        "First-time setup: connect the WAN port, then open the setup wizard.",
        "Set a schedule for the guest network.",
        "Write to support by email or log in to the login page.",
    ]
    index = KeywordIndex.build(texts)
    _, ids = index.search("How do I set up the router?", 3)
    assert ids[0] == 0
    _, ids = index.search("What is the support e-mail?", 3)
    assert ids[0] == 2
    assert joined_words("How do I set up e-mail and log in?", index.retriever.vocab_dict) == ["setup", "email", "login"]
    assert joined_words("set up 1 2", {"setup", "12"}) == ["setup"]  # two numbers are never one
