/* minivmm's entry: argv -> config -> VM -> exit status. The only place that
 * calls exit().
 *
 * Exit status (also in README.md and ARCHITECTURE.md):
 *   0        the guest powered off
 *   N        the guest wrote N to the debug-exit port (N & 0xff)
 *   1        bad configuration or a start-up failure
 *   2        a fatal runtime error (KVM internal error, failed VM entry...)
 *   3        the guest reset and --no-reboot was given, or its in-process
 *            restart failed
 *   128+S    stopped by signal S (SIGINT, SIGTERM, SIGHUP) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/cli.h"
#include "frontend/cli.h"
#include "vmm/log.h"
#include "vmm/vm.h"

int main(int argc, char **argv)
{
    struct config cfg;
    struct vm *vm = NULL;
    char err[512];
    int r, level;

    if (argc > 1 && !strcmp(argv[1], "host"))
        exit(host_main(argc - 1, argv + 1));

    r = config_parse(argc, argv, &cfg, err, sizeof(err));
    if (r == 1) {
        fputs(config_usage(), stdout);
        exit(0);
    }
    if (r < 0) {
        fprintf(stderr, "minivmm: %s\n", err);
        exit(1);
    }
    level = LOG_INFO + cfg.verbosity;
    log_set_level(level < LOG_ERR ? LOG_ERR : level > LOG_DEBUG ? LOG_DEBUG : (enum log_level)level);

    if (vm_create(&cfg, &vm) < 0) {
        fprintf(stderr, "minivmm: out of memory\n");
        exit(1);
    }
    if (vm_start(vm) < 0) {
        vm_destroy(vm);
        exit(1);
    }
    vm_run(vm);
    r = vm_exit_code(vm);
    vm_destroy(vm);
    exit(r);
}
