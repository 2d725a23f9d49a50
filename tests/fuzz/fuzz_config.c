/* fuzz_config.c — the config parser (kao_config_parse_string), the cross-key checks, and the rule
 * that a run folder's config.ini (kao_config_dump) reads back as the same config. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kao/config.h"
#include "kao/util.h"

/* The dump of an accepted config must parse back to the same hash. */
static void check_round_trip(const kao_config *c) {
    char *dump = kao_config_dump(c);
    kao_config back;
    kao_config_defaults(&back);
    KAO_ASSERT(kao_config_parse_string(&back, dump, "dump") == KAO_OK, "the dump reads back: %s\n%s",
               kao_last_error(), dump);
    KAO_ASSERT(kao_config_hash(&back) == kao_config_hash(c), "the dump reads back as the same config:\n%s", dump);
    free(dump);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kao_clear_error();
    char *text = kao_malloc(size + 1, "fuzz input");
    memcpy(text, data, size);
    text[size] = '\0';
    kao_config c;
    kao_config_defaults(&c);
    if (kao_config_parse_string(&c, text, "fuzz.ini") == KAO_OK && kao_config_validate(&c) == KAO_OK)
        check_round_trip(&c);
    free(text);
    return 0;
}
