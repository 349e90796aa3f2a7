/* bench_switch.h — `quept bench switch` (bench_switch.c). */
#ifndef QUEPT_BENCH_SWITCH_H
#define QUEPT_BENCH_SWITCH_H

/* argv: the options after "bench switch". Returns a process exit code. */
int bench_switch_main(int argc, char **argv);

#endif
