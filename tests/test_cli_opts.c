/* The option parser every command uses (base/cli_opts.h): values with a
 * space or '=', flags, positionals, and each way a command line can be
 * wrong — unknown option, missing value, a value on a flag, too many
 * positionals, an option given twice, out-of-range numbers — refused with
 * the option named. */
#include <string.h>

#include "base/cli_opts.h"
#include "check.h"

#define N_OPTS 3

static int parse(int argc, char **argv, CliOpt *o, const char **pos, int *npos, QErr *err) {
    CliOpt init[N_OPTS] = {{"model", 1, 0}, {"epochs", 1, 0}, {"quiet", 0, 0}};
    memcpy(o, init, sizeof init);
    return cli_parse(argc, argv, o, N_OPTS, pos, 1, npos, err);
}

int main(void) {
    CliOpt o[N_OPTS];
    const char *pos[1];
    int npos, v;
    double x;
    QErr err = {{0}};
    char *ok[] = {"art.qept", "--model", "m.bin", "--epochs=7", "--quiet"};
    CHECK(parse(5, ok, o, pos, &npos, &err) == 0);
    CHECK(npos == 1 && !strcmp(pos[0], "art.qept"));
    CHECK(!strcmp(cli_get(o, N_OPTS, "model"), "m.bin") && cli_get(o, N_OPTS, "quiet"));
    CHECK(cli_get_int(o, N_OPTS, "epochs", 15, 0, 100, &v, &err) == 0 && v == 7);
    CHECK(cli_get_int(o, N_OPTS, "epochs", 15, 8, 100, &v, &err) != 0 && strstr(err.msg, "--epochs"));
    CHECK(cli_get_float(o, N_OPTS, "missing", 0.5, 0, 1, &x, &err) == 0 && x == 0.5);

    struct {
        int argc;
        char *argv[4];
        const char *expect;
    } bad[] = {
        {1, {"--nope"}, "unknown option '--nope'"},
        {1, {"--model"}, "--model needs a value"},
        {1, {"--quiet=1"}, "--quiet takes no value"},
        {2, {"a", "b"}, "unexpected argument 'b'"},
        {4, {"--model", "a", "--model", "b"}, "--model given twice"},
        {2, {"--quiet", "--quiet"}, "--quiet given twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse(bad[i].argc, bad[i].argv, o, pos, &npos, &err);
        CHECK_MSG(rc != 0 && strstr(err.msg, bad[i].expect), "case %zu: rc %d, '%s'", i, rc, err.msg);
    }
    char *nan_arg[] = {"--epochs", "nan"};
    CHECK(parse(2, nan_arg, o, pos, &npos, &err) == 0);
    CHECK(cli_get_float(o, N_OPTS, "epochs", 1, 0, 10, &x, &err) != 0);
    CHECK(cli_get_int(o, N_OPTS, "epochs", 1, 0, 10, &v, &err) != 0);
    CHECK(cli_wants_help(2, (char *[]){"x", "--help"}) && !cli_wants_help(1, (char *[]){"x"}));
    CHECK_DONE();
}
