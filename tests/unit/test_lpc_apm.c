/* ICH9 LPC's APM ports (devices/chipset/lpc_ich9.c): 0xB2 APM_CNT and 0xB3 APM_STS
 * store what is written; a write to APM_CNT is counted as an SMI the guest
 * asked for (minivmm has no SMM) and does nothing else. */
#include <criterion/criterion.h>
#include <errno.h>

#include "devices/chipset/lpc_ich9.h"
#include "fake_env.h"

static struct fake_env fe;
static struct pci_bus pb;
static struct lpc_ich9 *lpc;

static void apm_setup(void)
{
    fake_env_init(&fe);
    cr_assert_eq(pci_bus_init(&pb, &fe.pio, &fe.mmio), 0);
    struct lpc_ich9_config lc = { .sci_gsi = ACPI_PM_SCI_GSI };
    cr_assert_eq(lpc_ich9_create(&fe.env, &pb, &lc, &lpc), 0);
}

static void apm_teardown(void)
{
    lpc_ich9_destroy(lpc);
    pci_bus_fini(&pb);
    fake_env_fini(&fe);
}

TestSuite(lpc_apm, .init = apm_setup, .fini = apm_teardown);

Test(lpc_apm, ports_store_and_count_smi_requests)
{
    cr_assert_eq(pio_in(&fe, 0xB2, 1), 0);
    cr_assert_eq(lpc->apm_smi_requests, 0);
    pio_out(&fe, 0xB3, 0x5A, 1);
    cr_assert_eq(pio_in(&fe, 0xB3, 1), 0x5A, "APM_STS is a scratch register");
    cr_assert_eq(lpc->apm_smi_requests, 0, "APM_STS raises nothing");
    pio_out(&fe, 0xB2, 0x00, 1);     /* what OVMF's SmmControl2Dxe writes */
    cr_assert_eq(lpc->apm_smi_requests, 1);
    pio_out(&fe, 0xB2, 0xC3A5, 2);   /* a word write covers both */
    cr_assert_eq(lpc->apm_smi_requests, 2);
    cr_assert_eq(pio_in(&fe, 0xB2, 2), 0xC3A5);
}

Test(lpc_apm, ports_go_with_the_device)
{
    lpc_ich9_destroy(lpc);
    lpc = NULL;
    uint8_t b;
    cr_assert_neq(bus_read(&fe.pio, 0xB2, &b, 1), 0, "nothing decodes 0xB2 after destroy");
    struct lpc_ich9_config lc = { .sci_gsi = ACPI_PM_SCI_GSI };
    cr_assert_eq(lpc_ich9_create(&fe.env, &pb, &lc, &lpc), 0, "and it can be created again");
    struct lpc_ich9 *second = NULL;
    cr_assert_lt(lpc_ich9_create(&fe.env, &pb, &lc, &second), 0, "two LPCs cannot share 0xB2");
    cr_assert_null(second);
}
