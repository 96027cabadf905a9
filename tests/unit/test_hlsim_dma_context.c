/* hlsim_dma_set_context: what a model says its DMA is for is kept per DMA,
 * so a fault the host reports later names the DMA that caused it, not
 * whatever the model is doing by then (docs/hlsim.md "Naming DMA"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hlsim.h"
#include "hlsim_env.h"

#define DEV_BDF 0x0100u

static hlsim_device *model_dev;

static void *model_create(hlsim_device *dev, const char *args, char *err, size_t err_size)
{
    (void)args;
    (void)err;
    (void)err_size;
    model_dev = dev;
    return dev;
}

static void model_destroy(void *model) { (void)model; }
static void model_reset(void *model, enum hlsim_reset_kind kind)
{
    (void)model;
    (void)kind;
}
static uint32_t model_mmio_read(void *model, unsigned bar, uint64_t offset, unsigned size)
{
    (void)model;
    (void)bar;
    (void)offset;
    (void)size;
    return 0;
}
static void model_mmio_write(void *model, unsigned bar, uint64_t offset, uint32_t value,
                             unsigned size)
{
    (void)model;
    (void)bar;
    (void)offset;
    (void)value;
    (void)size;
}

static const struct hlsim_model_ops model = {
    .abi_version = HLSIM_ABI_VERSION,
    .name = "context-test",
    .description = {
        .vendor_id = 0x1234, .device_id = 0x0001, .class_code = 0xFF0000,
        .bars = {{.size_bytes = 4096}},
        .max_payload_supported_bytes = 128,
    },
    .create = model_create,
    .destroy = model_destroy,
    .reset = model_reset,
    .mmio_read = model_mmio_read,
    .mmio_write = model_mmio_write,
};

/* The environment: TLPs the device sends are accepted and dropped (no host
 * answers them; only what the SDK remembers is under test). */
static int env_send_tlp(void *env, const struct tlpb_tlp *tlp)
{
    (void)env;
    (void)tlp;
    return 0;
}
static void env_send_interrupt(void *env, Tlpb__InterruptKind kind, unsigned vector)
{
    (void)env;
    (void)kind;
    (void)vector;
}
static uint64_t env_now(void *env)
{
    (void)env;
    return 0;
}
static void env_defer(void *env, void (*fn)(void *), void *arg)
{
    (void)env;
    (void)fn;
    (void)arg;
}
static void env_log(void *env, int level, const char *message)
{
    (void)env;
    (void)level;
    (void)message;
}

static const struct hlsim_env_ops env_ops = {
    .send_tlp = env_send_tlp,
    .send_interrupt = env_send_interrupt,
    .now_ns = env_now,
    .defer = env_defer,
    .log = env_log,
};

static void dma_cb(void *arg, enum hlsim_dma_status status)
{
    (void)arg;
    (void)status;
}

static int setup(void **state)
{
    (void)state;
    char err[256] = "";
    struct hlsim_device_options opts = {.bus_device_function = DEV_BDF};
    hlsim_device *dev = hlsim_device_create(&model, "", &opts, &env_ops, NULL, err, sizeof(err));
    assert_non_null(dev);
    assert_ptr_equal(dev, model_dev);
    /* Memory space and bus mastering on, as an OS would. */
    uint8_t payload[4] = {0x06, 0, 0, 0};
    struct tlpb_tlp tlp = {
        .kind = TLPB_TLP_CFGWR0, .tag = 1, .length_dw = 1, .first_be = 0x3,
        .completer_id = DEV_BDF, .cfg_register = 0x04, .bar_hint = TLPB_NO_BAR,
        .payload = payload, .payload_bytes = 4,
    };
    hlsim_device_receive_tlp(dev, &tlp);
    assert_true(hlsim_bus_master_enabled(dev));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hlsim_device_destroy(model_dev);
    model_dev = NULL;
    return 0;
}

static void test_no_context_by_default(void **state)
{
    (void)state;
    static uint8_t buf[64];
    assert_int_equal(hlsim_dma_read(model_dev, 0x1000, buf, sizeof(buf), dma_cb, NULL), 0);
    assert_null(hlsim_device_dma_context(model_dev, false, 0x1000));
}

static void test_each_dma_keeps_its_context(void **state)
{
    (void)state;
    static uint8_t buf[256];
    hlsim_dma_set_context(model_dev, "descriptor %u", 4u);
    assert_int_equal(hlsim_dma_read(model_dev, 0x1000, buf, 256, dma_cb, NULL), 0);
    hlsim_dma_set_context(model_dev, "descriptor %u", 5u);
    assert_int_equal(hlsim_dma_read(model_dev, 0x2000, buf, 256, dma_cb, NULL), 0);
    assert_int_equal(hlsim_dma_write(model_dev, 0x3000, buf, 100, NULL, NULL), 0);

    /* A fault at any byte of a DMA names that DMA's context, not the
     * current one. */
    assert_string_equal(hlsim_device_dma_context(model_dev, false, 0x1000), "descriptor 4");
    assert_string_equal(hlsim_device_dma_context(model_dev, false, 0x10FF), "descriptor 4");
    assert_string_equal(hlsim_device_dma_context(model_dev, false, 0x2080), "descriptor 5");
    assert_string_equal(hlsim_device_dma_context(model_dev, true, 0x3063), "descriptor 5");
    /* Outside every DMA, or in the other direction: unknown. */
    assert_null(hlsim_device_dma_context(model_dev, false, 0x1100));
    assert_null(hlsim_device_dma_context(model_dev, true, 0x1000));
    assert_null(hlsim_device_dma_context(model_dev, true, 0x3064));
}

static void test_newest_dma_wins_and_clear(void **state)
{
    (void)state;
    static uint8_t buf[64];
    hlsim_dma_set_context(model_dev, "first");
    assert_int_equal(hlsim_dma_write(model_dev, 0x4000, buf, 64, NULL, NULL), 0);
    hlsim_dma_set_context(model_dev, "second");
    assert_int_equal(hlsim_dma_write(model_dev, 0x4000, buf, 64, NULL, NULL), 0);
    assert_string_equal(hlsim_device_dma_context(model_dev, true, 0x4010), "second");

    /* Cleared: later DMA carries none; earlier ones keep theirs. */
    hlsim_dma_set_context(model_dev, NULL);
    assert_int_equal(hlsim_dma_write(model_dev, 0x5000, buf, 64, NULL, NULL), 0);
    assert_null(hlsim_device_dma_context(model_dev, true, 0x5000));
    assert_string_equal(hlsim_device_dma_context(model_dev, true, 0x4000), "second");
}

static void test_flush_read_names_the_write(void **state)
{
    (void)state;
    static uint8_t buf[10];
    hlsim_dma_set_context(model_dev, "status of descriptor 9");
    /* The zero-length read that reports whether the write landed goes to
     * the write's last DW. */
    assert_int_equal(hlsim_dma_write(model_dev, 0x6001, buf, 10, dma_cb, NULL), 0);
    assert_string_equal(hlsim_device_dma_context(model_dev, false, 0x6008),
                        "status of descriptor 9");
}

static void test_long_context_is_cut(void **state)
{
    (void)state;
    static uint8_t buf[4];
    char text[2 * HLSIM_DMA_CONTEXT_MAX];
    memset(text, 'x', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    hlsim_dma_set_context(model_dev, "%s", text);
    assert_int_equal(hlsim_dma_read(model_dev, 0x7000, buf, 4, dma_cb, NULL), 0);
    const char *got = hlsim_device_dma_context(model_dev, false, 0x7000);
    assert_non_null(got);
    assert_int_equal(strlen(got), HLSIM_DMA_CONTEXT_MAX - 1);
}

static void test_reset_clears_the_context(void **state)
{
    (void)state;
    static uint8_t buf[4];
    hlsim_dma_set_context(model_dev, "before reset");
    hlsim_device_reset(model_dev, HLSIM_RESET_FUNCTION_LEVEL);
    /* bus mastering is off after the reset: turn it on again */
    uint8_t payload[4] = {0x06, 0, 0, 0};
    struct tlpb_tlp tlp = {
        .kind = TLPB_TLP_CFGWR0, .tag = 2, .length_dw = 1, .first_be = 0x3,
        .completer_id = DEV_BDF, .cfg_register = 0x04, .bar_hint = TLPB_NO_BAR,
        .payload = payload, .payload_bytes = 4,
    };
    hlsim_device_receive_tlp(model_dev, &tlp);
    assert_int_equal(hlsim_dma_read(model_dev, 0x8000, buf, 4, dma_cb, NULL), 0);
    assert_null(hlsim_device_dma_context(model_dev, false, 0x8000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_context_by_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_dma_keeps_its_context, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newest_dma_wins_and_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_read_names_the_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_context_is_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_clears_the_context, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
