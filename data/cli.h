// Shared pieces of the `tokenize` command line: parsed options and the
// subcommands implemented in separate files.
#ifndef DATA_CLI_H
#define DATA_CLI_H

#include <stdint.h>
#include "docs.h"
#include "gpt2_bpe.h"
#include "../llmc/utils.h"   /* now_seconds */

enum { MAX_THREADS = 256 };

typedef struct {
    const char* vocab_dir;    // --vocab
    int threads;              // --threads
    int allow_special;        // --allow-special
    int complete_end;         // --complete-end
    const char* out;          // --out
    const char* file;         // -f (encode), --ids-out (bench)
    DocOptions docs;          // --jsonl/--field/--sep/--chunk/--keep-invalid-utf8
    int shuffle;              // --shuffle given
    uint64_t seed;
    uint64_t val_tokens, shard_tokens;
    int repeat;               // --repeat (bench)
    const char** args;        // positional arguments (inputs, ids, shards...)
    int n_args;
    Buf list;                 // --files-from contents; args may point into it
} Opts;

// Vocabulary plus one encoder per thread.
typedef struct {
    Gpt2Vocab vocab;
    Gpt2Encoder* enc[MAX_THREADS];
    int threads;
} Engine;

void engine_open(Engine* e, const Opts* o);
void engine_close(Engine* e);

int cmd_shards(const Opts* o);
int cmd_verify(Opts* o);
int cmd_docs(Opts* o);

#endif // DATA_CLI_H
