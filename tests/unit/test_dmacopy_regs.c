/* The RTL's package (examples/dmacopy/rtl/dmacopy_pkg.sv) against the C
 * register map (examples/dmacopy/dmacopy_regs.h): every device constant of
 * the package has its counterpart in the header with the same value, and
 * every counterpart is in the package. The PCIe encodings the package also
 * holds (Fmt, Type, completion status) are not the device's and are left
 * out. Usage: test_dmacopy_regs [path of dmacopy_pkg.sv]. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dmacopy_regs.h"

#ifndef DMACOPY_PKG_SV
#error "DMACOPY_PKG_SV must name examples/dmacopy/rtl/dmacopy_pkg.sv"
#endif

/* Register offsets in the package are DW indices. */
#define REG(name) {"REG_" #name, DMACOPY_REG_##name / 4u, DMACOPY_REG_##name % 4u == 0}
#define SAME(name) {#name, DMACOPY_##name, true}

static const struct counterpart {
    const char *sv_name;
    uint64_t value;
    bool representable;
} counterparts[] = {
    {"DMACOPY_ID", DMACOPY_ID_VALUE, true},
    REG(ID),
    REG(SCRATCH),
    REG(CTRL),
    REG(STATUS),
    REG(RING_LO),
    REG(RING_HI),
    REG(RING_SIZE),
    REG(HEAD),
    REG(TAIL),
    REG(IRQ_STATUS),
    REG(IRQ_MASK),
    REG(COMPLETED),
    REG(ERR_CODE),
    SAME(ERR_NONE),
    SAME(ERR_BAD_LENGTH),
    SAME(ERR_DMA_READ),
    SAME(ERR_DMA_WRITE),
    SAME(ERR_BAD_RING),
    SAME(MSIX_VECTOR_COMPLETION),
    SAME(MSIX_VECTOR_ERROR),
    SAME(MAX_COPY_BYTES),
    SAME(MAX_RING_SIZE),
};
#define N_COUNTERPARTS (sizeof(counterparts) / sizeof(counterparts[0]))

/* PCIe's own encodings, kept in the package for the TLP helpers. */
static const char *const not_device_constants[] = {"FMT_", "TYPE_", "CPL_"};

static const char *pkg_path = DMACOPY_PKG_SV;

struct localparam {
    char name[64];
    uint64_t value;
    int line;
};

/* A SystemVerilog number: 32'h7A11_0001, 10'h00A, 8'd4, 3'b010, or 4096.
 * Returns 0, or -1 when text is not one. */
static int parse_sv_number(const char *text, uint64_t *value)
{
    const char *p = text;
    unsigned base = 10;
    const char *tick = strchr(p, '\'');
    if (tick) {
        char b = (char)tolower((unsigned char)tick[1]);
        base = b == 'h' ? 16 : b == 'd' ? 10 : b == 'b' ? 2 : b == 'o' ? 8 : 0;
        if (!base)
            return -1;
        p = tick + 2;
    }
    uint64_t v = 0;
    unsigned digits = 0;
    for (; *p; p++) {
        if (*p == '_')
            continue;
        if (isspace((unsigned char)*p))
            break;
        unsigned d;
        if (isdigit((unsigned char)*p))
            d = (unsigned)(*p - '0');
        else if (isxdigit((unsigned char)*p))
            d = (unsigned)(tolower((unsigned char)*p) - 'a' + 10);
        else
            return -1;
        if (d >= base)
            return -1;
        v = v * base + d;
        digits++;
    }
    if (!digits)
        return -1;
    *value = v;
    return 0;
}

/* Every `localparam <type> NAME = <number>;` of the package. */
static size_t read_localparams(struct localparam *out, size_t max)
{
    FILE *f = fopen(pkg_path, "r");
    if (!f)
        fail_msg("cannot open %s", pkg_path);
    char line[512];
    size_t n = 0;
    int lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *lp = strstr(line, "localparam");
        char *eq = strchr(line, '=');
        char *semi = strchr(line, ';');
        if (!lp || !eq || !semi || eq > semi)
            continue;
        /* the name is the last word before '=' */
        char *end = eq;
        while (end > lp && isspace((unsigned char)end[-1]))
            end--;
        char *start = end;
        while (start > lp && (isalnum((unsigned char)start[-1]) || start[-1] == '_'))
            start--;
        *semi = '\0';
        char *num = eq + 1;
        while (isspace((unsigned char)*num))
            num++;
        if (n == max)
            fail_msg("%s: more than %zu localparams", pkg_path, max);
        if ((size_t)(end - start) >= sizeof(out[n].name) || end == start)
            fail_msg("%s:%d: cannot read the localparam's name", pkg_path, lineno);
        memcpy(out[n].name, start, (size_t)(end - start));
        out[n].name[end - start] = '\0';
        out[n].line = lineno;
        if (parse_sv_number(num, &out[n].value) != 0)
            fail_msg("%s:%d: %s = %s: not a number this test reads", pkg_path, lineno,
                     out[n].name, num);
        n++;
    }
    fclose(f);
    return n;
}

static bool is_pcie_encoding(const char *name)
{
    for (size_t i = 0; i < sizeof(not_device_constants) / sizeof(not_device_constants[0]); i++)
        if (strncmp(name, not_device_constants[i], strlen(not_device_constants[i])) == 0)
            return true;
    return false;
}

static void test_package_matches_header(void **state)
{
    (void)state;
    struct localparam params[256];
    size_t n = read_localparams(params, 256);
    assert_true(n >= N_COUNTERPARTS);
    unsigned errors = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_pcie_encoding(params[i].name))
            continue;
        const struct counterpart *c = NULL;
        for (size_t k = 0; k < N_COUNTERPARTS; k++)
            if (strcmp(counterparts[k].sv_name, params[i].name) == 0)
                c = &counterparts[k];
        if (!c) {
            print_error("%s:%d: %s has no counterpart in dmacopy_regs.h\n", pkg_path,
                        params[i].line, params[i].name);
            errors++;
        } else if (!c->representable || c->value != params[i].value) {
            print_error("%s:%d: %s is 0x%llx, dmacopy_regs.h says 0x%llx%s\n", pkg_path,
                        params[i].line, params[i].name, (unsigned long long)params[i].value,
                        (unsigned long long)c->value,
                        c->representable ? "" : " (not a DW offset)");
            errors++;
        }
    }
    assert_int_equal(errors, 0);
}

static void test_header_values_all_in_package(void **state)
{
    (void)state;
    struct localparam params[256];
    size_t n = read_localparams(params, 256);
    unsigned missing = 0;
    for (size_t k = 0; k < N_COUNTERPARTS; k++) {
        unsigned found = 0;
        for (size_t i = 0; i < n; i++)
            if (strcmp(counterparts[k].sv_name, params[i].name) == 0)
                found++;
        if (found != 1) {
            print_error("%s: %s appears %u times, expected once\n", pkg_path,
                        counterparts[k].sv_name, found);
            missing++;
        }
    }
    assert_int_equal(missing, 0);
}

static void test_number_reader(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(parse_sv_number("32'h7A11_0001", &v), 0);
    assert_true(v == 0x7A110001u);
    assert_int_equal(parse_sv_number("10'h00A", &v), 0);
    assert_true(v == 10);
    assert_int_equal(parse_sv_number("3'b101", &v), 0);
    assert_true(v == 5);
    assert_int_equal(parse_sv_number("32'd4096", &v), 0);
    assert_true(v == 4096);
    assert_int_equal(parse_sv_number("4096", &v), 0);
    assert_true(v == 4096);
    assert_int_equal(parse_sv_number("8'd9A", &v), -1);
    assert_int_equal(parse_sv_number("2'b12", &v), -1);
    assert_int_equal(parse_sv_number("x", &v), -1);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        pkg_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_number_reader),
        cmocka_unit_test(test_package_matches_header),
        cmocka_unit_test(test_header_values_all_in_package),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
