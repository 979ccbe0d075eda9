# GPT-2 tokenizer and token-shard tools, included by the top-level Makefile.
# Plain -O3 (no -march=native): the binaries must run on any x86-64 machine.
DATA_CC ?= gcc
DATA_CFLAGS ?= -O3 -std=gnu11 -Wall -Wextra -pthread
DATA_LIBS = -lpcre2-8 -pthread
DATA_LIB_SRC = data/sha256.c data/json.c data/vocab.c data/encoder.c data/docs.c data/docset.c \
               data/parallel.c data/shard_io.c
DATA_HEADERS = $(wildcard data/*.h) llmc/utils.h llmc/tokenizer.h
DATA_TOOL_SRC = data/tokenize.c data/shards_cmd.c data/verify_cmd.c
DATA_BINS = data/tokenize data/test_tokenizer

data/tokenize: $(DATA_TOOL_SRC) $(DATA_LIB_SRC) $(DATA_HEADERS)
	$(DATA_CC) $(DATA_CFLAGS) -o $@ $(DATA_TOOL_SRC) $(DATA_LIB_SRC) $(DATA_LIBS)

data/test_tokenizer: data/test_tokenizer.c $(DATA_LIB_SRC) $(DATA_HEADERS)
	$(DATA_CC) $(DATA_CFLAGS) -o $@ data/test_tokenizer.c $(DATA_LIB_SRC) $(DATA_LIBS)

# The decoding file the trainers read to print samples (llmc/tokenizer.h).
data/gpt2_tokenizer.bin: data/tokenize
	bash data/fetch_vocab.sh data/vocab
	data/tokenize export --vocab data/vocab $@

# Prerequisites of an including Makefile are expanded where its rule is read,
# so `all: $(DATA_BINS)` placed before the include would see nothing: add them here.
all: $(DATA_BINS)

.PHONY: test-data data-clean
# Unit and command-line tests; fetches the vocabulary into data/vocab/ first
# and reports the tests that need it as skipped when it cannot be had.
test-data: $(DATA_BINS)
	bash data/test_data.sh

data-clean:
	rm -f $(DATA_BINS)
