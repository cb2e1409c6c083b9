/* cx-unitgen: writes one packed WorkUnit (what the planner would send on
 * cascade.units) to a file and prints its unit id, for the scheduler's
 * scenario scripts:
 *
 *   cx-unitgen OUT JOB CLASS CLASS_INDEX ORDINAL SAMPLES [CHECKPOINT [SIDE
 *              [STEPS]]]
 */
#include <stdio.h>
#include <stdlib.h>

#include "cascade/codec.h"
#include "cascade/names.h"

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: cx-unitgen OUT JOB CLASS CLASS_INDEX ORDINAL "
                        "SAMPLES [CHECKPOINT [SIDE [STEPS]]]\n");
        return 2;
    }
    char uid[33];
    Cascade__V1__GenerationParams gp = CASCADE__V1__GENERATION_PARAMS__INIT;
    gp.checkpoint = argc > 7 ? argv[7] : "ref-cxr-v0";
    gp.sampler = CASCADE__V1__SAMPLER__SAMPLER_DDIM;
    gp.steps = argc > 9 ? (uint32_t)atoi(argv[9]) : 4;
    gp.guidance_scale = 1.0;
    gp.width = gp.height = argc > 8 ? (uint32_t)atoi(argv[8]) : 32;
    gp.bit_depth = 16;
    gp.seed_base = 7;
    cx_unit_t u = CASCADE__V1__WORK_UNIT__INIT;
    u.job_id = argv[2];
    u.class_name = argv[3];
    u.class_index = (uint32_t)atoi(argv[4]);
    u.ordinal = (uint32_t)atoi(argv[5]);
    u.sample_count = (uint32_t)atoi(argv[6]);
    cx_unit_id(u.job_id, u.class_name, u.ordinal, 0, uid);
    u.unit_id = uid;
    u.seed = cx_unit_seed(gp.seed_base, u.class_index, u.ordinal, 0);
    u.params = &gp;
    cx_err_t err = {0};
    size_t len;
    uint8_t *buf = cx_pack(&u.base, &len, &err);
    FILE *f = buf ? fopen(argv[1], "wb") : NULL;
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cx-unitgen: cannot write %s\n", argv[1]);
        free(buf);
        return 1;
    }
    free(buf);
    printf("%s\n", uid);
    return 0;
}
