/* main.c — the galvc driver. main() is the pipeline: read the model, derive
 * its shapes, and emit what was asked for; the rest of this file reads the
 * command line, writes make dependency rules, and runs `galvc profile`,
 * which measures the machine by launching galvc-profiler under mpirun. */
#include "backend/backend.h"
#include "frontend/frontend.h"
#include "hw/hw.h"
#include "passes/passes.h"
#include "toolchain.h"
#include "report/report.h"

#include <errno.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

enum { EXIT_USER = 1, EXIT_USAGE = 2 };
enum { TARGET_CPU = 1, TARGET_CUDA = 2 }; /* --target; 0: from the cluster's device kind */

#define MAX_DEVICES (INT64_C(1) << 30) /* the most devices galvc plans for */

typedef enum Emit { EMIT_NONE, EMIT_IR, EMIT_IR_JSON, EMIT_STRATEGIES, EMIT_PLAN, EMIT_PLAN_JSON, EMIT_GALVATRON, EMIT_C,
                   EMIT_SVG, EMIT_LLVM, EMIT_ASM, EMIT_PTX } Emit;

typedef struct Options {
    FrontendOptions fe;
    Emit emit;
    const char *output;   /* -o */
    const char *plot;     /* --plot: also draw the plan in this SVG file */
    bool deps_only;       /* -M */
    bool deps_file;       /* -MD */
    bool deps_phony;      /* -MP */
    const char *deps_out; /* -MF */
    const char *deps_target; /* -MT */
    int64_t devices;         /* --devices: plan for this many (0: the cluster's) */
    bool ckpt;               /* --ckpt: list checkpointing strategies too */
    bool baselines;          /* --baselines */
    bool explain;            /* --explain: each layer's runner-up */
    bool keep;               /* --keep: keep the generated train.c */
    bool verbose;            /* -v: say what the build does */
    int target;              /* --target: TARGET_CPU, TARGET_CUDA, or 0: the cluster's device kind decides */
    const char *gpu_arch;    /* --emit=ptx:sm_80: the PTX target (default sm_90) */
    const char *profile;     /* --profile: a measured hardware profile */
    bool has_uniform;        /* --uniform: this plan, no search */
    Strategy uniform;
    int uniform_schedule;
    int uniform_vpp;         /* model chunks a stage holds (interleaved 1F1B); 0: not given */
    int64_t uniform_m;
    int uniform_ckpt_every;  /* checkpoint every K-th transformer layer only */
    int uniform_sp;          /* Megatron-SP with TP: 1 sp, 0 nosp, -1 not given (on where the model runs it) */
    const char *plan;        /* --plan: cost this Galvatron config instead of searching */
} Options;

static const char usage[] =
    "usage: galvc MODEL.gv [options]\n"
    "\n"
    "  --emit=ir        print the layer IR as a table (the default)\n"
    "  --emit=ir-json   print the layer IR as JSON\n"
    "  --emit=strategies  list the candidate strategies (the decision tree's leaves)\n"
    "  --emit=plan      search and print the plan (--emit=plan-json: as JSON;\n"
    "                   --emit=galvatron-config: as Galvatron's galvatron_config)\n"
    "  --explain        with a plan: each layer's runner-up and why it lost\n"
    "  --emit=svg       draw the plan as SVG: a step's timeline, memory, strategies\n"
    "  --plot FILE      also draw the plan in FILE (SVG); stdout is unchanged\n"
    "  --profile PATH   a measured hardware profile: galvc's JSON, or a folder\n"
    "                   of Galvatron's profile files (overrides the cluster's)\n"
    "  --devices N      plan for N devices (default: the cluster's); with\n"
    "                   --emit=strategies no model file is needed\n"
    "  --ckpt           with --emit=strategies: include activation checkpointing\n"
    "  --baselines      also print pure DP, SDP, TP, PP and the Megatron and\n"
    "                   DeepSpeed grids, costed by the same model\n"
    "  --uniform tp=T,pp=P,dp=D[,cp=C][,zero=0|1|2|3|sdp][,zero3-accum=each|once][,ckpt|ckpt-every=K]\n"
    "            [,tp-strided][,sp|nosp][,ulysses=U][,schedule=gpipe|1f1b|interleaved][,vpp=V][,m=M]\n"
    "                   use this uniform plan instead of searching (ZeRO stage over the DP group;\n"
    "                   sdp is zero=3; zero3-accum: reduce-scatter every micro-batch or once a step;\n"
    "                   sp: Megatron sequence parallelism with TP, on by default where the model runs it;\n"
    "                   ulysses=U: Ulysses sequence parallelism over U devices, with tp=1; U x dp replicas;\n"
    "                   cp: context parallelism, each sequence split over C ranks, ring attention)\n"
    "  --plan FILE      cost the plan in a Galvatron galvatron_config JSON file\n"
    "                   instead of searching (it may be over the memory budget)\n"
    "  -o FILE          build the training program for the plan\n"
    "  --emit=c         print the training program's C source\n"
    "  --target cpu|cuda  with -o: the program's ranks run on CPU cores or each\n"
    "                   on a GPU (CUDA runtime, cuBLAS, NCCL, the plan's kernels\n"
    "                   as PTX); the default follows the cluster's device kind\n"
    "  --keep           with -o: keep the generated source as FILE.c\n"
    "                   (and the generated kernels as FILE.kernels.o, or\n"
    "                   FILE.device.c for --target cuda)\n"
    "  -v               with -o: report the kernels' generation time\n"
    "  --emit=llvm      print the plan's generated kernels as LLVM IR (--emit=asm:\n"
    "                   as this CPU's assembly; --emit=ptx[:sm_80]: as PTX for sm_90)\n"
    "  --cluster FILE   use the cluster in FILE instead of the model's\n"
    "  -D NAME=VALUE    override every binding of NAME (a constant or a field)\n"
    "  -I DIR           also look for included files in DIR\n"
    "  -M               print a make rule listing every file read, and stop\n"
    "  -MD              also write that rule to a .d file\n"
    "  -MF FILE         write the rule to FILE\n"
    "  -MT TARGET       name TARGET in the rule (default: the -o file)\n"
    "  -MP              add an empty rule for each included file\n"
    "  --version, --help\n"
    "\n"
    "       galvc profile [MODEL.gv] [--target cpu|cuda] [-np N] [--quick] -o FILE\n"
    "                   measure this machine (galvc profile --help)\n"
    "       galvc --calibrate LOG.jsonl... --profile PROFILE.json -o NEW.json\n"
    "                   refit a profile from training logs (galvc --calibrate --help)\n"
    "       galvc report RUN.jsonl... [-o FILE.svg|FILE.html]\n"
    "                   draw training runs against their plans (galvc report --help)\n"
    "\n"
    "exit status: 0 success, 1 error in the input, 2 bad usage\n";

/* A usage error of command `cmd` ("galvc", "galvc profile"): the message, a
 * hint, exit status 2. */
static _Noreturn void usage_error(const char *cmd, const char *fmt, const char *arg) {
    fprintf(stderr, "%s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s: try '%s --help'\n", cmd, cmd);
    exit(EXIT_USAGE);
}

static _Noreturn void bad_usage(const char *fmt, const char *arg) { usage_error("galvc", fmt, arg); }

/* The value of an option given as "-X VALUE" or "-XVALUE" / "--opt=VALUE". */
static const char *option_value(int argc, char **argv, int *i, const char *opt) {
    size_t n = strlen(opt);
    const char *arg = argv[*i];
    if (arg[n] == '=') return arg + n + 1;
    if (arg[n]) return arg + n;
    if (*i + 1 >= argc) bad_usage("%s needs a value", opt);
    return argv[++*i];
}

static void add_define(Arena *a, Options *o, const char *text) {
    const char *eq = strchr(text, '=');
    if (!eq || eq == text) bad_usage("-D expects NAME=VALUE, not '%s'", text);
    Define *defs = arena_alloc(a, (size_t)(o->fe.n_defines + 1) * sizeof *defs);
    if (o->fe.n_defines) memcpy(defs, o->fe.defines, (size_t)o->fe.n_defines * sizeof *defs);
    defs[o->fe.n_defines++] = (Define){arena_strndup(a, text, (size_t)(eq - text)), eq + 1};
    o->fe.defines = defs;
}

#define UNIFORM_FORM                                                                                                   \
    "tp=T,pp=P,dp=D[,cp=C][,zero=0|1|2|3|sdp][,zero3-accum=each|once][,ckpt|ckpt-every=K][,tp-strided][,sp|nosp]"   \
    "[,ulysses=U][,schedule=gpipe|1f1b|interleaved][,vpp=V][,m=M]"

/* The number of "key=N" in item: N decimal digits only, every one read. */
static bool uniform_number(const char *item, const char *key, long long *v) {
    size_t k = strlen(key), n = strlen(item + k);
    if (strncmp(item, key, k) != 0 || n < 1 || n > 18 || strspn(item + k, "0123456789") != n) return false;
    *v = strtoll(item + k, NULL, 10);
    return true;
}

/* One item of --uniform into s and o; false when it is not one of the forms. */
static bool uniform_item(Options *o, Strategy *s, const char *item, long long *v) {
    if (uniform_number(item, "tp=", v)) return s->tp = (int)*v, true;
    if (uniform_number(item, "pp=", v)) return s->pp = (int)*v, true;
    if (uniform_number(item, "dp=", v)) return s->dp = (int)*v, true;
    if (uniform_number(item, "cp=", v)) return s->cp = (int)*v, true;
    if (uniform_number(item, "ulysses=", v)) return s->ulysses = (int)*v, true;
    if (uniform_number(item, "m=", v)) return o->uniform_m = *v, true;
    if (uniform_number(item, "vpp=", v)) return o->uniform_vpp = (int)*v, true;
    if (strcmp(item, "sdp") == 0) return s->sdp = true, s->zero = 0, true;
    if (uniform_number(item, "zero=", v) && *v <= 3)
        return s->sdp = *v == 3, s->zero = *v < 3 ? (int)*v : 0, *v = 1, true;
    if (strcmp(item, "zero3-accum=once") == 0) return s->zero3_once = true;
    if (strcmp(item, "zero3-accum=each") == 0) return s->zero3_once = false, true;
    if (strcmp(item, "ckpt") == 0) return s->ckpt = true;
    if (uniform_number(item, "ckpt-every=", v) && *v >= 1 && *v <= (1 << 30))
        return o->uniform_ckpt_every = (int)*v, *v = 1, true;
    if (strcmp(item, "tp-strided") == 0) return s->tp_consec = false, true;
    if (strcmp(item, "sp") == 0) return o->uniform_sp = 1, true;
    if (strcmp(item, "nosp") == 0) return o->uniform_sp = 0, true;
    if (strcmp(item, "schedule=gpipe") == 0) return o->uniform_schedule = SCHED_GPIPE, true;
    if (strcmp(item, "schedule=1f1b") == 0) return o->uniform_schedule = SCHED_1F1B, true;
    if (strcmp(item, "schedule=interleaved") == 0) return o->uniform_schedule = SCHED_INTERLEAVED, true;
    return false;
}

/* --uniform's schedule and vpp agree: V >= 2 chunks a stage is interleaved 1F1B
 * (schedule=interleaved alone takes V = 2), which needs a pipeline. */
static void uniform_interleaving(Options *o, const Strategy *s, const char *spec) {
    int v = o->uniform_vpp, sched = o->uniform_schedule;
    char msg[512] = "";
    if (v == 0 && strstr(spec, "vpp=")) snprintf(msg, sizeof msg, "--uniform: vpp must be 1 or more in '%s'", spec);
    else if (v >= 2 && sched != SCHED_AUTO && sched != SCHED_INTERLEAVED)
        snprintf(msg, sizeof msg, "--uniform: vpp=%d needs schedule=interleaved, not schedule=%s, in '%s'", v,
                 schedule_names[sched], spec);
    else if (v == 1 && sched == SCHED_INTERLEAVED)
        snprintf(msg, sizeof msg, "--uniform: schedule=interleaved needs vpp=2 or more, not vpp=1, in '%s'", spec);
    else if ((v >= 2 || sched == SCHED_INTERLEAVED) && s->pp < 2)
        snprintf(msg, sizeof msg, "--uniform: schedule=interleaved needs pp=2 or more, not pp=%d, in '%s'", s->pp, spec);
    else if ((v >= 2 || sched == SCHED_INTERLEAVED) && o->uniform_m % s->pp)
        snprintf(msg, sizeof msg,
                 "--uniform: interleaving needs the micro-batches to be a multiple of pp (Megatron-LM's rule): "
                 "m=%lld, pp=%d, in '%s'", (long long)o->uniform_m, s->pp, spec);
    if (*msg) bad_usage("%s", msg);
    if (v >= 2 || sched == SCHED_INTERLEAVED) o->uniform_schedule = SCHED_INTERLEAVED, o->uniform_vpp = v >= 2 ? v : 2;
    else o->uniform_vpp = 1;
}

/* --uniform UNIFORM_FORM: the whole value, item by item, however long. */
static void parse_uniform(Arena *a, Options *o, const char *spec) {
    Strategy s = {.pp = 1, .tp = 1, .dp = 1, .tp_consec = true, .cp = 1};
    o->uniform_sp = -1;
    for (const char *p = spec;; p++) {
        size_t len = strcspn(p, ",");
        const char *item = arena_strndup(a, p, len);
        long long v = 0;
        if (!len) bad_usage("--uniform: an empty item in '%s'", spec);
        if (!uniform_item(o, &s, item, &v)) bad_usage("--uniform: cannot read '%s' (" UNIFORM_FORM ")", item);
        if (v < 0 || v > (1 << 30)) bad_usage("--uniform: '%s' is out of range (at most 2^30)", item);
        p += len;
        if (!*p) break;
    }
    if (s.tp < 1 || s.pp < 1 || s.dp < 1 || s.cp < 1 || (strstr(spec, "ulysses=") && s.ulysses < 1))
        bad_usage("--uniform: degrees must be positive in '%s'", spec);
    if (s.tp > 1 && s.ulysses > 1)
        bad_usage("--uniform: ulysses with tp in '%s': galvc runs Ulysses without TP in a layer (tp=1)", spec);
    if (s.ulysses > 1 && s.cp > 1)
        bad_usage("--uniform: ulysses and cp in '%s': a layer splits its sequence one way or the other", spec);
    if (s.cp > 1 && !s.tp_consec && s.tp > 1 && s.dp > 1)
        bad_usage("--uniform: cp takes consecutive TP groups (TP, then CP, then DP ranks), not tp-strided, in '%s'", spec);
    uniform_interleaving(o, &s, spec);
    if (strategy_replicas(&s) == 1) s.sdp = false, s.zero = 0;
    if (!s.sdp) s.zero3_once = false;
    if (s.tp == 1 || s.dp == 1) s.tp_consec = true;
    o->uniform = s;
    o->has_uniform = true;
}

static void parse_args(Arena *a, int argc, char **argv, Options *o) {
    const char **dirs = arena_alloc(a, (size_t)argc * sizeof *dirs);
    o->fe.include_dirs = dirs;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        } else if (strcmp(arg, "--version") == 0) {
            Toolchain tc = toolchain_find(a);
            toolchain_print(stdout, &tc);
            exit(0);
        } else if (strncmp(arg, "--emit", 6) == 0 && (arg[6] == '=' || !arg[6])) {
            const char *v = option_value(argc, argv, &i, "--emit");
            if (strcmp(v, "ir") == 0) o->emit = EMIT_IR;
            else if (strcmp(v, "ir-json") == 0) o->emit = EMIT_IR_JSON;
            else if (strcmp(v, "strategies") == 0) o->emit = EMIT_STRATEGIES;
            else if (strcmp(v, "plan") == 0) o->emit = EMIT_PLAN;
            else if (strcmp(v, "plan-json") == 0) o->emit = EMIT_PLAN_JSON;
            else if (strcmp(v, "galvatron-config") == 0) o->emit = EMIT_GALVATRON;
            else if (strcmp(v, "c") == 0) o->emit = EMIT_C;
            else if (strcmp(v, "svg") == 0) o->emit = EMIT_SVG;
            else if (strcmp(v, "llvm") == 0) o->emit = EMIT_LLVM;
            else if (strcmp(v, "asm") == 0) o->emit = EMIT_ASM;
            else if (strcmp(v, "ptx") == 0 || strncmp(v, "ptx:sm_", 7) == 0) o->emit = EMIT_PTX, o->gpu_arch = v[3] ? v + 4 : NULL;
            else bad_usage("unknown --emit kind '%s' (known: ir, ir-json, strategies, plan, plan-json, "
                           "galvatron-config, c, svg, llvm, asm, ptx)", v);
        } else if (strncmp(arg, "--devices", 9) == 0 && (arg[9] == '=' || !arg[9])) {
            const char *v = option_value(argc, argv, &i, "--devices");
            char *end;
            errno = 0;
            long long n = strtoll(v, &end, 10);
            if (!*end && *v && (errno == ERANGE || n > MAX_DEVICES))
                bad_usage("--devices: at most 2^30 (1073741824) devices, not '%s'", v);
            if (*end || !*v || n < 1) bad_usage("--devices needs a whole number from 1 to 2^30, not '%s'", v);
            o->devices = n;
        } else if (strcmp(arg, "--ckpt") == 0) {
            o->ckpt = true;
        } else if (strcmp(arg, "--baselines") == 0) {
            o->baselines = true;
        } else if (strcmp(arg, "--keep") == 0) {
            o->keep = true;
        } else if (strcmp(arg, "-v") == 0) {
            o->verbose = true;
        } else if (strncmp(arg, "--target", 8) == 0 && (arg[8] == '=' || !arg[8])) {
            const char *t = option_value(argc, argv, &i, "--target");
            if (strcmp(t, "cuda") != 0 && strcmp(t, "cpu") != 0) bad_usage("unknown --target '%s' (known: cpu, cuda)", t);
            o->target = strcmp(t, "cuda") == 0 ? TARGET_CUDA : TARGET_CPU;
        } else if (strcmp(arg, "--explain") == 0) {
            o->explain = true;
        } else if (strncmp(arg, "--plot", 6) == 0 && (arg[6] == '=' || !arg[6])) {
            o->plot = option_value(argc, argv, &i, "--plot");
        } else if (strncmp(arg, "--profile", 9) == 0 && (arg[9] == '=' || !arg[9])) {
            o->profile = option_value(argc, argv, &i, "--profile");
        } else if (strncmp(arg, "--plan", 6) == 0 && (arg[6] == '=' || !arg[6])) {
            o->plan = option_value(argc, argv, &i, "--plan");
        } else if (strncmp(arg, "--uniform", 9) == 0 && (arg[9] == '=' || !arg[9])) {
            parse_uniform(a, o, option_value(argc, argv, &i, "--uniform"));
        } else if (strncmp(arg, "--cluster", 9) == 0 && (arg[9] == '=' || !arg[9])) {
            o->fe.cluster_file = option_value(argc, argv, &i, "--cluster");
        } else if (strcmp(arg, "-M") == 0) {
            o->deps_only = true;
        } else if (strcmp(arg, "-MD") == 0) {
            o->deps_file = true;
        } else if (strcmp(arg, "-MP") == 0) {
            o->deps_phony = true;
        } else if (strncmp(arg, "-MF", 3) == 0) {
            o->deps_out = option_value(argc, argv, &i, "-MF");
        } else if (strncmp(arg, "-MT", 3) == 0) {
            o->deps_target = option_value(argc, argv, &i, "-MT");
        } else if (strncmp(arg, "-o", 2) == 0) {
            o->output = option_value(argc, argv, &i, "-o");
        } else if (strncmp(arg, "-D", 2) == 0) {
            add_define(a, o, option_value(argc, argv, &i, "-D"));
        } else if (strncmp(arg, "-I", 2) == 0) {
            dirs[o->fe.n_include_dirs++] = option_value(argc, argv, &i, "-I");
        } else if (arg[0] == '-' && arg[1]) {
            bad_usage("unknown option '%s'", arg);
        } else if (o->fe.input) {
            bad_usage("more than one model file ('%s')", arg);
        } else {
            o->fe.input = arg;
        }
    }
    if (!o->fe.input && !(o->emit == EMIT_STRATEGIES && o->devices))
        bad_usage("%s", "no model file given");
    if (o->plan && o->has_uniform) bad_usage("%s", "--plan and --uniform each give the plan: use one");
}

/* A path as make reads it: spaces, ':' and '#' escaped, dollars doubled
 * (a newline or a tab cannot be written: deps_names_ok refuses them). */
static void put_make_path(FILE *f, const char *p) {
    for (; *p; p++) {
        if (*p == ' ' || *p == '#' || *p == ':') fputc('\\', f);
        if (*p == '$') fputc('$', f);
        fputc(*p, f);
    }
}

/* Whether make can read every name of the rule: a newline or a tab in a file
 * name would end the rule, or start a recipe. Each one refused is reported,
 * at the include that named the file. */
static bool deps_names_ok(const Options *o, const Spec *spec) {
    Diag d;
    diag_init(&d, stderr);
    const char *target = o->deps_target ? o->deps_target : o->output;
    if (target && strpbrk(target, "\n\t"))
        diag_plain(&d, "%s: make cannot name a target with a newline or a tab", o->deps_target ? "-MT" : "-o");
    for (int i = 0; i < spec->n_files; i++) {
        const SourceFile *f = spec->files[i];
        if (!strpbrk(f->path, "\n\t")) continue;
        if (f->included_at)
            diag_error(&d, *f->included_at, "make cannot name a file with a newline or a tab in a dependency rule");
        else
            diag_plain(&d, "'%s': make cannot name a file with a newline or a tab in a dependency rule", f->path);
    }
    return d.errors == 0;
}

/* "target: model.gv cluster.gv ..." as gcc -M writes it. */
static void write_deps(FILE *f, const Options *o, const Spec *spec) {
    put_make_path(f, o->deps_target ? o->deps_target : o->output ? o->output : "train");
    fputc(':', f);
    for (int i = 0; i < spec->n_files; i++) {
        fputs(" \\\n ", f);
        put_make_path(f, spec->files[i]->path);
    }
    fputc('\n', f);
    for (int i = 1; o->deps_phony && i < spec->n_files; i++) {
        fputc('\n', f);
        put_make_path(f, spec->files[i]->path);
        fputs(":\n", f);
    }
}

/* -MD/-MF: the rule goes to a file (default: the output's name + ".d"). */
static int emit_deps(const Options *o, const Spec *spec) {
    if (!deps_names_ok(o, spec)) return EXIT_USER;
    if (o->deps_only && !o->deps_out) {
        write_deps(stdout, o, spec);
        return 0;
    }
    const char *path = o->deps_out ? o->deps_out : arena_printf(spec->arena, "%s.d", o->output ? o->output : "train");
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "galvc: error: cannot write '%s': %s\n", path, strerror(errno));
        return EXIT_USER;
    }
    write_deps(f, o, spec);
    if (fclose(f) != 0) {
        fprintf(stderr, "galvc: error: cannot write '%s': %s\n", path, strerror(errno));
        return EXIT_USER;
    }
    return 0;
}

/* Why galvc cannot plan for this many devices (-1: more than int64 holds). */
static int devices_error(int64_t devices) {
    if (devices < 0)
        fprintf(stderr, "galvc: error: the cluster has more devices than galvc can count; it plans for at most "
                        "2^30 (1073741824)\n");
    else if (devices > MAX_DEVICES)
        fprintf(stderr, "galvc: error: %lld devices: galvc plans for at most 2^30 (1073741824) devices\n",
                (long long)devices);
    else
        fprintf(stderr, "galvc: error: %lld devices: galvc plans for 1 to 2^30 devices\n", (long long)devices);
    return EXIT_USER;
}

/* --uniform's degrees do not multiply to the device count: say so, and
 * which degrees the count allows (its divisors). */
static int uniform_devices_error(Arena *a, const Strategy *u, int64_t devices) {
    if (strategy_cp(u) > 1)
        fprintf(stderr, "galvc: error: --uniform: tp x cp x pp x dp = %d x %d x %d x %d = %lld, but the plan is for %lld "
                        "devices", u->tp, u->cp, u->pp, u->dp, (long long)u->pp * strategy_stage_devices(u),
                (long long)devices);
    else if (strategy_ulysses(u) > 1)
        fprintf(stderr,
                "galvc: error: --uniform: ulysses x pp x dp = %d x %d x %d = %lld, but the plan is for %lld devices",
                u->ulysses, u->pp, u->dp, (long long)u->pp * strategy_stage_devices(u), (long long)devices);
    else
        fprintf(stderr, "galvc: error: --uniform: tp x pp x dp = %d x %d x %d = %lld, but the plan is for %lld devices",
                u->tp, u->pp, u->dp, (long long)u->tp * u->pp * u->dp, (long long)devices);
    int n;
    const int64_t *div = strategy_divisors(devices, a, &n);
    if (n > 32) return fputs("\n", stderr), EXIT_USAGE;
    fprintf(stderr, " (each degree must divide %lld: ", (long long)devices);
    for (int i = 0; i < n; i++) fprintf(stderr, "%s%lld", i ? ", " : "", (long long)div[i]);
    fputs(")\n", stderr);
    return EXIT_USAGE;
}

/* --emit=strategies: the decision tree's leaves, one per line, the count last. */
static int print_strategies(Arena *arena, int64_t devices, bool ckpt, const PlanHints *hints) {
    StrategySet set;
    if (!pass_prune(devices, ckpt, hints, arena, &set)) return devices_error(devices);
    char buf[96];
    for (int i = 0; i < set.n; i++) puts(strategy_str(buf, sizeof buf, &set.items[i]));
    printf("%d strategies\n", set.n);
    return 0;
}

/* "pp=2 tp=8 sdp=1 ckpt (30 of 35 layers)": the plan's most common strategy. */
static void describe_plan(char *buf, size_t n, const Spec *spec, const Plan *p) {
    int L = spec->graph->n_layers, best = 0, best_count = 0;
    for (int i = 0; i < L; i++) {
        int count = 0;
        for (int j = 0; j < L; j++) count += strategy_equal(&p->layer[i], &p->layer[j]);
        if (count > best_count) best = i, best_count = count;
    }
    char s[96];
    snprintf(buf, n, "%lld micro-batches, %s (%d of %d layers)", (long long)p->micro_batches,
             strategy_str(s, sizeof s, &p->layer[best]), best_count, L);
}

/* --devices, else every rank the cluster runs: ranks_per_device on each of
 * its devices (-1 when that overflows). */
static int64_t plan_devices(const Options *opt, const Spec *spec) {
    int64_t n;
    const Cluster *c = spec->cluster;
    if (opt->devices) return opt->devices;
    if (__builtin_mul_overflow(c->nodes, c->devices_per_node, &n)) return -1;
    if (__builtin_mul_overflow(n, c->ranks_per_device, &n)) return -1;
    return n;
}

/* --profile, else the cluster's `profile = "..."` read beside its file. */
static const char *profile_path(Arena *a, const Options *opt, const Cluster *c) {
    if (opt->profile) return opt->profile;
    if (!c->profile || c->profile[0] == '/' || !c->loc.file) return c->profile;
    const char *file = c->loc.file->path, *slash = strrchr(file, '/');
    if (!slash) return c->profile;
    return arena_printf(a, "%.*s/%s", (int)(slash - file), file, c->profile);
}

/* The plan as a picture: its timeline (pass_timeline), drawn (emit_svg). */
static int draw_plan(FILE *out, Arena *a, const Spec *spec, const HwProfile *hw, const Plan *plan, int64_t devices) {
    Timeline tl;
    if (!pass_timeline(spec, hw, plan, a, &tl)) die("no timeline for a plan that was found");
    return emit_svg(out, spec, plan, &tl, devices) ? 0 : EXIT_USER;
}

/* --plot FILE: the picture in FILE, never over a file the compilation read. */
static int plot_plan(const char *path, Arena *a, const Spec *spec, const HwProfile *hw, const Plan *plan,
                     int64_t devices) {
    struct stat ps, fs;
    bool exists = stat(path, &ps) == 0;
    for (int i = 0; i < spec->n_files; i++)
        if (strcmp(spec->files[i]->path, path) == 0 ||
            (exists && stat(spec->files[i]->path, &fs) == 0 && fs.st_dev == ps.st_dev && fs.st_ino == ps.st_ino)) {
            fprintf(stderr, "galvc: error: --plot '%s' is an input of this compilation; not writing over it\n", path);
            return EXIT_USAGE;
        }
    FILE *f = fopen(path, "w");
    int rc = f ? draw_plan(f, a, spec, hw, plan, devices) : EXIT_USER;
    if (!f || fclose(f) != 0 || rc) {
        fprintf(stderr, "galvc: error: cannot write '%s': %s\n", path, strerror(errno));
        return EXIT_USER;
    }
    return 0;
}

/* An imported plan over the memory budget: a warning, or an error when it
 * would be built. */
static bool plan_fits(const Options *opt, Plan *plan, int64_t memory) {
    char need[32], have[32];
    plan->budget = memory;
    if (plan->peak <= memory) return true;
    bool build = opt->output || opt->emit == EMIT_C;
    fprintf(stderr, "galvc: %s: %s: the plan needs %s per device, more than the %s there is%s\n",
            build ? "error" : "warning", opt->plan, bytes_str(need, sizeof need, (double)plan->peak),
            bytes_str(have, sizeof have, (double)memory), build ? "; it cannot be built" : "");
    return !build;
}

/* --emit=llvm|asm|ptx: the plan's generated kernels. */
static int emit_kernels(const Options *opt, const Spec *spec, const Plan *plan, Diag *d) {
    KernelSet set;
    kernels_for_plan(spec, plan, &set);
    KernelOutput what = opt->emit == EMIT_LLVM ? KOUT_LLVM : opt->emit == EMIT_ASM ? KOUT_ASM : KOUT_PTX;
    return kernels_write(stdout, &set, what, opt->gpu_arch, NULL, d) ? 0 : EXIT_USER;
}

/* Search (or take --uniform or --plan), then print the plan and the baselines, or build the program. */
/* --uniform's sequence parallelism: as given (sp needs tp > 1 and a model
 * whose every layer runs it), else on wherever it can be, as Megatron-Core
 * turns it on with TP. False, with the message, when sp cannot be had. */
static bool uniform_sp(const Options *opt, const Graph *g, Strategy *u) {
    bool can = u->tp > 1 && graph_sp_splits(g, u->tp);
    u->sp = opt->uniform_sp == 1 || (opt->uniform_sp < 0 && can);
    if (!u->sp || can) return true;
    fprintf(stderr, "galvc: error: --uniform: sp needs tp=2 or more and a model whose every layer runs sequence "
                    "parallelism (embedding, pre-norm transformer layers, norm, lm_head; the sequence divided by tp)\n");
    return false;
}

/* --uniform's context parallelism: cp=C needs a model whose every layer
 * runs it (graph_cp_splits). False, with the message, when it does not. */
static bool uniform_cp(const Graph *g, const Strategy *u) {
    if (strategy_cp(u) == 1 || graph_cp_splits(g, u->cp)) return true;
    fprintf(stderr, "galvc: error: --uniform: cp=%d needs a model whose every layer runs context parallelism "
                    "(embedding, pre-norm transformer layers without dropout, norm, lm_head; the sequence divided by "
                    "2 cp = %d)\n", u->cp, 2 * u->cp);
    return false;
}

/* --uniform's Ulysses degree must split every layer's sequence and every
 * transformer layer's heads and key/value heads (runtime_layer.c); false,
 * with the message, when it does not. */
static bool uniform_ulysses(const Graph *g, const Strategy *u) {
    if (graph_ulysses_splits(g, u->tp, strategy_ulysses(u))) return true;
    fprintf(stderr,
            "galvc: error: --uniform: ulysses=%d needs a model of embedding, transformer layers (not windowed, "
            "no cross-attention), norms and lm_head whose sequence, heads and kv_heads divide by %d\n",
            u->ulysses, u->ulysses);
    return false;
}

static int plan_model(Arena *arena, const Options *opt, Spec *spec) {
    const Cluster *c = spec->cluster;
    int64_t devices = plan_devices(opt, spec);
    if (devices < 1 || devices > MAX_DEVICES) return devices_error(devices);
    HwProfile hw;
    Diag diag;
    diag_init(&diag, stderr);
    if (!profile_resolve(arena, c, spec->graph, profile_path(arena, opt, c), &hw, &diag)) return EXIT_USER;
    Cluster *shared = arena_alloc(arena, sizeof *shared);
    hw_share(c, devices, &hw, shared); /* ranks sharing a device: each its share */
    spec->cluster = shared;
    SearchRequest req = {
        .devices = devices, .flat_pipeline = opt->emit == EMIT_GALVATRON, .ulysses = search_offers_ulysses(spec)};
    Strategy uniform = opt->uniform;
    if (opt->has_uniform) {
        Strategy *u = &uniform;
        if (u->pp * strategy_stage_devices(u) != devices) return uniform_devices_error(arena, u, devices);
        if (!uniform_sp(opt, spec->graph, u) || !uniform_ulysses(spec->graph, u) || !uniform_cp(spec->graph, u))
            return EXIT_USAGE;
        if (opt->uniform_vpp > 1 && (int64_t)u->pp * opt->uniform_vpp > spec->graph->n_layers) {
            fprintf(stderr, "galvc: error: --uniform: pp x vpp = %d x %d = %lld chunks, but %s has %d layers (a chunk "
                            "takes one at least)\n", u->pp, opt->uniform_vpp, (long long)u->pp * opt->uniform_vpp,
                    spec->graph->name, spec->graph->n_layers);
            return EXIT_USAGE;
        }
        req.uniform = u;
        req.schedule = opt->uniform_schedule;
        req.vpp = opt->uniform_vpp;
        req.micro_batches = opt->uniform_m;
        req.ckpt_every = opt->uniform_ckpt_every;
    }
    Plan imported;
    if (opt->plan) { /* cost it whatever its memory; the table shows that against the budget */
        if (!galvatron_read(opt->plan, spec, devices, arena, &imported, &diag)) return EXIT_USER;
        req.fixed = &imported;
        req.budget = INT64_MAX / 4;
    }
    Plan plan;
    if (!pass_search(spec, &hw, &req, arena, &plan)) return devices_error(devices);
    if (opt->plan && plan.found && !plan_fits(opt, &plan, hw.memory)) return EXIT_USER;
    if (!plan.found) {
        char have[32], need[32], what[160];
        Plan least;
        req.min_memory = true;
        req.budget = INT64_MAX / 4;
        if (!pass_search(spec, &hw, &req, arena, &least) || !least.found) {
            int64_t m = req.micro_batches ? req.micro_batches : spec->hints.micro_batches;
            if (m)
                fprintf(stderr, "galvc: error: no plan: %lld micro-batches of the global batch (%lld) do not give "
                                "every one of %lld devices whole samples\n",
                        (long long)m, (long long)spec->train->global_batch, (long long)devices);
            else
                fprintf(stderr, "galvc: error: no plan: the global batch (%lld) does not split into whole samples "
                                "over %lld devices (pipeline stages at most the layers, TP degrees that split the "
                                "heads and FFN)\n", (long long)spec->train->global_batch, (long long)devices);
            return EXIT_USER;
        }
        describe_plan(what, sizeof what, spec, &least);
        fprintf(stderr, "galvc: error: no plan fits in %s per device; the smallest needs %s%s: pp=%d, %s\n",
                bytes_str(have, sizeof have, (double)hw.memory),
                bytes_str(need, sizeof need, (double)(least.peak + plan.reserve)),
                plan.reserve ? " with the cluster's reserve" : "", least.pp, what);
        return EXIT_USER;
    }
    if (opt->plot) {
        int rc = plot_plan(opt->plot, arena, spec, &hw, &plan, devices);
        if (rc) return rc;
    }
    if (opt->emit == EMIT_SVG && !opt->baselines) return draw_plan(stdout, arena, spec, &hw, &plan, devices);
    if (opt->baselines) {
        Baseline baselines[BASELINE_COUNT];
        pass_baselines(stdout, spec, &hw, devices, &plan, arena, baselines);
        if (opt->emit != EMIT_PLAN && opt->emit != EMIT_PLAN_JSON && opt->emit != EMIT_GALVATRON) return 0;
        putchar('\n');
    }
    if (opt->emit == EMIT_C) return emit_c(stdout, spec, &plan, devices, opt->fe.input, &diag) ? 0 : EXIT_USER;
    if (opt->emit >= EMIT_LLVM) return emit_kernels(opt, spec, &plan, &diag);
    if (opt->output) {
        Toolchain tc = toolchain_find(arena);
        if (!tc.has_runtime) {
            fprintf(stderr, "galvc: error: -o: this galvc was built without the runtime (libgalvrt)\n");
            return EXIT_USAGE;
        }
        bool cuda = !spec->host_target;
        if (cuda && !tc.build.cuda_library) {
            fprintf(stderr, "galvc: error: %s: this galvc was built without the CUDA toolkit%s\n",
                    opt->target ? "--target cuda" : "the cluster's devices are GPUs",
                    opt->target ? "" : " (--target cpu builds the program for CPU ranks)");
            return EXIT_USAGE;
        }
        tc.build.cuda = cuda;
        tc.build.keep = opt->keep;
        tc.build.verbose = opt->verbose;
        return build(spec, &plan, devices, opt->fe.input, opt->output, &tc.build, &diag);
    }
    PlanFormat format = opt->emit == EMIT_PLAN_JSON ? PLAN_JSON : opt->emit == EMIT_GALVATRON ? PLAN_GALVATRON : PLAN_TABLE;
    return pass_plan(stdout, spec, &hw, &plan, devices, format, opt->explain, arena) ? EXIT_USER : 0;
}

/* The input (a file read, or the --profile) that path names too, by any
 * path: the same device and inode. NULL when path is no existing input. */
static const char *input_at(const Options *o, const Spec *spec, const char *path) {
    struct stat out, in;
    if (stat(path, &out) != 0) return NULL;
    for (int i = 0; i <= spec->n_files; i++) {
        const char *p = i < spec->n_files ? spec->files[i]->path : o->profile;
        if (p && stat(p, &in) == 0 && in.st_dev == out.st_dev && in.st_ino == out.st_ino) return p;
    }
    return NULL;
}

/* Refuse (exit status 2) to write any output over one of the inputs. */
static int check_outputs(Arena *a, const Options *o, const Spec *spec) {
    const char *outputs[3] = {0}, *flags[3] = {0};
    int n = 0;
    if (o->output && !o->deps_only) {
        outputs[n] = o->output, flags[n++] = "-o";
        if (o->keep) outputs[n] = arena_printf(a, "%s.c", o->output), flags[n++] = "--keep";
    }
    if (o->deps_out || (o->deps_file && !o->deps_only))
        outputs[n] = o->deps_out ? o->deps_out : arena_printf(a, "%s.d", o->output ? o->output : "train"),
        flags[n++] = o->deps_out ? "-MF" : "-MD";
    for (int i = 0; i < n; i++) {
        const char *in = input_at(o, spec, outputs[i]);
        if (!in) continue;
        fprintf(stderr, "galvc: error: %s: '%s' is also an input ('%s'); galvc will not write over it\n", flags[i],
                outputs[i], in);
        return EXIT_USAGE;
    }
    return 0;
}

/* Everything after the command line: the pipeline, stage by stage. */
static int compile(Arena *arena, const Options *opt) {
    Diag diag;
    diag_init(&diag, stderr);
    if (!opt->fe.input) return print_strategies(arena, opt->devices, opt->ckpt, NULL);

    Spec *spec = frontend_load(arena, &opt->fe, &diag);
    if (spec) pass_shape(spec, &diag);
    if (!spec || diag.errors) return EXIT_USER;
    /* GPUs in the cluster build for them unless --target says otherwise; --emit=ptx shows a GPU's kernels */
    spec->host_target = opt->target       ? opt->target == TARGET_CPU
                        : opt->emit == EMIT_PTX ? false
                                                : spec->cluster->device == DEVICE_CPU;
    int rc = check_outputs(arena, opt, spec);
    if (rc) return rc;

    if (opt->deps_only || opt->deps_file || opt->deps_out) {
        rc = emit_deps(opt, spec);
        if (rc || opt->deps_only) return rc;
    }
    if (opt->emit == EMIT_STRATEGIES) return print_strategies(arena, plan_devices(opt, spec), opt->ckpt, &spec->hints);
    if (opt->emit == EMIT_IR_JSON) return ir_print_json(stdout, spec) ? EXIT_USER : 0;
    if (opt->emit == EMIT_PLAN || opt->emit == EMIT_PLAN_JSON || opt->emit == EMIT_GALVATRON || opt->baselines ||
        opt->has_uniform || opt->plan || opt->explain || opt->emit >= EMIT_C || opt->plot || opt->output)
        return plan_model(arena, opt, spec);
    ir_print_table(stdout, spec);
    return 0;
}

/* ---- galvc profile ------------------------------------------------------------ */

static const char profile_usage[] =
    "usage: galvc profile [MODEL.gv [-D NAME=VALUE]...] [--target cpu|cuda] [-np N] [--quick]\n"
    "                     [--prepare DIR] -o FILE\n"
    "\n"
    "Measure this machine with the runtime's own kernels, layers and collectives\n"
    "on N MPI ranks and write the profile galvc plans with (--profile FILE, or\n"
    "profile = \"FILE\" in a cluster block; docs/profile-format.md).\n"
    "MODEL.gv: measure the layer kinds at this model's shape (its first transformer\n"
    "layer's hidden size, heads, FFN and sequence, its vocabulary), so the fitted\n"
    "rates are the ones its GEMMs reach, and the kernels its programs will run;\n"
    "else at a default shape.\n"
    "\n"
    "  -D NAME=VALUE  bind a top-level constant or a train field of MODEL.gv\n"
    "                 (-D seq=64: measure at the sequence the run will use)\n"
    "  --target T     what to measure: cpu (the default), or cuda: this machine's\n"
    "                 GPUs (cuBLAS GEMMs in fp32, TF32 and bf16, the model's\n"
    "                 generated kernels and layers, NCCL or, ranks sharing a GPU,\n"
    "                 host-staged collectives; a rank per GPU)\n"
    "  -np N          MPI ranks, a power of two (default 2; 1 with --target cuda)\n"
    "  --quick        small sizes, few repetitions: seconds, for tests\n"    "  --prepare DIR  build MODEL.gv's kernels into DIR and print the command that\n"
    "                 measures with them instead of running it (for a machine\n"
    "                 that has the profiler but not galvc)\n"
    "  -o FILE        where to write the profile (JSON)\n"
    "\n"
    "exit status: 0 success, 1 the measurement failed, 2 bad usage\n";

static _Noreturn void bad_profile_usage(const char *fmt, const char *arg) { usage_error("galvc profile", fmt, arg); }

/* Run argv (argv[0] looked up in PATH) and wait; its exit status, or -1 when it could not start. */
static int run_program(char *const argv[]) {
    pid_t pid;
    int err = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
    if (err) {
        fprintf(stderr, "galvc profile: error: cannot run '%s': %s\n", argv[0], strerror(err));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "galvc profile: error: %s was killed by signal %d\n", argv[0], WTERMSIG(status));
        return 128 + WTERMSIG(status);
    }
    return WEXITSTATUS(status);
}

/* The shape galvc profile measures a model's layers at: "C,H,hd,F,T,V" from
 * its first transformer layer and its vocabulary; false (with the errors
 * printed) when the model cannot be read or has no such layer. */
static bool model_shape(const Spec *spec, const char *path, char *out, size_t n) {
    const Graph *g = spec->graph;
    int64_t vocab = 0;
    for (int i = 0; i < g->n_layers; i++)
        if (g->layers[i]->vocab > vocab) vocab = g->layers[i]->vocab;
    for (int i = 0; i < g->n_layers; i++) {
        const Layer *l = g->layers[i];
        if (l->kind != LAYER_ENCODER && l->kind != LAYER_DECODER) continue;
        snprintf(out, n, "%lld,%lld,%lld,%lld,%lld,%lld", (long long)l->hidden, (long long)l->heads,
                 (long long)l->head_dim, (long long)l->ffn, (long long)l->seq, (long long)(vocab ? vocab : 256));
        return true;
    }
    fprintf(stderr, "galvc profile: error: %s has no encoder or decoder layer to measure\n", path);
    return false;
}

/* The kernels the model's programs would run at every TP degree up to np,
 * generated for this CPU and linked into a shared library in dir, so that
 * the profiler times the layers with the kernels the program will have.
 * Its path, or NULL (the profiler then times the reference kernels). */
static const char *profile_kernels(Arena *a, const Spec *spec, long long np, const char *dir, const Toolchain *tc,
                                   bool cuda) {
    Diag d;
    diag_init(&d, stderr);
    int L = spec->graph->n_layers;
    Plan plan = {.layer = arena_alloc(a, (size_t)L * sizeof *plan.layer)};
    KernelSet all = {0}, one;
    for (long long tp = 1; tp <= np; tp *= 2) {
        for (int i = 0; i < L; i++) plan.layer[i] = (Strategy){.pp = 1, .tp = (int)tp, .dp = 1, .tp_consec = true};
        kernels_for_plan(spec, &plan, &one);
        for (int k = 0; k < one.n; k++)
            kernels_add_sized(&all, one.k[k].kind, one.k[k].cols, one.k[k].flags, one.k[k].c[0], one.k[k].c[1],
                              one.k[k].c[2]);
    }
    /* the host's: an object; the GPU's: the CUDA target's kernel file (PTX, stubs, galvc_target) */
    const char *obj = arena_printf(a, cuda ? "%s/kernels.c" : "%s/kernels.o", dir);
    const char *lib = arena_printf(a, "%s/kernels.so", dir);
    FILE *f = fopen(obj, "wb");
    bool ok = f && (cuda ? emit_cuda_kernels(f, &all, &d) : kernels_write(f, &all, KOUT_OBJ, NULL, NULL, &d));
    if (f && fclose(f) != 0) ok = false;
    char *inc = arena_printf(a, "-I%s", tc->build.include_dir);
    char *cuda_inc = arena_printf(a, "-I%s", tc->build.cuda_include_dir ? tc->build.cuda_include_dir : ".");
    char *cc[] = {"cc", "-shared", "-o", (char *)lib, (char *)obj, NULL};
    char *cc_cuda[] = {"cc", "-shared", "-fPIC", "-O2", inc, cuda_inc, "-o", (char *)lib, (char *)obj, NULL};
    if (!ok || run_program(cuda ? cc_cuda : cc) != 0) {
        fprintf(stderr, "galvc profile: note: the model's kernels could not be built; the reference kernels are timed\n");
        return NULL;
    }
    return lib;
}

/* --prepare: the command line, one line on stdout, as it would run. */
static int print_command(char *const argv[]) {
    for (int i = 0; argv[i]; i++) printf("%s%s", i ? " " : "", argv[i]);
    putchar('\n');
    return 0;
}

/* `galvc profile ...`: check the options, then mpirun -np N galvc-profiler [--quick] [--shape ...] -o FILE. */
static int profile_command(Arena *a, int argc, char **argv) {
    const char *output = NULL, *np_text = NULL, *model = NULL, *prepare = NULL;
    bool quick = false, cuda = false;
    Options defs = {0}; /* -D's, for the model */
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(profile_usage, stdout);
            return 0;
        } else if (strncmp(arg, "--target", 8) == 0 && (arg[8] == '=' || !arg[8])) {
            const char *t = option_value(argc, argv, &i, "--target");
            cuda = strcmp(t, "cuda") == 0;
            if (!cuda && strcmp(t, "cpu") != 0) bad_profile_usage("unknown target '%s' (known: cpu, cuda)", t);
        } else if (strncmp(arg, "-np", 3) == 0 && (arg[3] == '=' || !arg[3])) {
            np_text = option_value(argc, argv, &i, "-np");
        } else if (strcmp(arg, "--quick") == 0) {
            quick = true;
        } else if (strncmp(arg, "--prepare", 9) == 0 && (arg[9] == '=' || !arg[9])) {
            prepare = option_value(argc, argv, &i, "--prepare");
        } else if (strncmp(arg, "-D", 2) == 0) {
            add_define(a, &defs, option_value(argc, argv, &i, "-D"));
        } else if (strncmp(arg, "-o", 2) == 0) {
            output = option_value(argc, argv, &i, "-o");
        } else if (arg[0] != '-' && !model && strlen(arg) > 3 && strcmp(arg + strlen(arg) - 3, ".gv") == 0) {
            model = arg;
        } else {
            bad_profile_usage(arg[0] == '-' ? "unknown option '%s'" : "unexpected argument '%s'", arg);
        }
    }
    if (defs.fe.n_defines && !model) bad_profile_usage("%s", "-D binds a name of MODEL.gv: give the model");
    if (prepare && !model) bad_profile_usage("%s", "--prepare builds MODEL.gv's kernels: give the model");
    FrontendOptions fe = defs.fe;
    fe.input = model;
    char shape[128] = "";
    Spec *spec = NULL; /* the model, loaded and shaped once */
    if (model) {
        Diag d;
        diag_init(&d, stderr);
        spec = frontend_load(a, &fe, &d);
        if (spec && !d.errors) pass_shape(spec, &d);
        if (!spec || d.errors || !model_shape(spec, model, shape, sizeof shape)) return EXIT_USER;
    }
    if (!np_text) np_text = cuda ? "1" : "2"; /* a GPU: one rank on it; more are -np's */
    char *end;
    long long np = strtoll(np_text, &end, 10);
    if (*end || !*np_text || np < 1 || np > 4096 || (np & (np - 1)))
        bad_profile_usage("-np needs a power of two from 1 to 4096 ranks, not '%s'", np_text);
    if (!output || !*output) bad_profile_usage("%s", "no output file: give -o FILE");

    /* a folder that cannot take the file fails now, not after the measurements */
    const char *slash = strrchr(output, '/');
    const char *dir = !slash ? "." : slash == output ? "/" : arena_strndup(a, output, (size_t)(slash - output));
    if (access(prepare ? prepare : dir, W_OK) != 0) {
        fprintf(stderr, "galvc profile: error: cannot write '%s': %s\n", prepare ? prepare : output, strerror(errno));
        return EXIT_USER;
    }
    Toolchain tc = toolchain_find(a);
    const char *profiler = cuda ? tc.profiler_cuda : tc.profiler, *mpiexec = tc.mpiexec;
    if (cuda && !tc.build.cuda_library) {
        fprintf(stderr, "galvc profile: error: --target cuda: this galvc was built without the CUDA toolkit "
                        "(see galvc --version)\n");
        return EXIT_USER;
    }
    if (!profiler) {
        fprintf(stderr, "galvc profile: error: cannot find %s (see galvc --version)\n",
                cuda ? "galvc-profiler-cuda" : "galvc-profiler");
        return EXIT_USER;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    char np_arg[32];
    snprintf(np_arg, sizeof np_arg, "%lld", np);
    char *args[20];
    int n = 0;
    args[n++] = (char *)mpiexec;
    if (geteuid() == 0) args[n++] = "--allow-run-as-root"; /* Open MPI refuses root otherwise */
    if (cores > 0 && np > cores) args[n++] = "--oversubscribe";
    args[n++] = "-np";
    args[n++] = np_arg;
    args[n++] = (char *)profiler;
    if (quick) args[n++] = "--quick";
    if (shape[0]) args[n++] = "--shape", args[n++] = shape;
    char tmp[] = "/tmp/galvc-profile-XXXXXX";
    bool made = !prepare && spec && mkdtemp(tmp);
    const char *kernels = made || prepare ? profile_kernels(a, spec, np, prepare ? prepare : tmp, &tc, cuda) : NULL;
    if (kernels) args[n++] = "--kernels", args[n++] = (char *)kernels;
    args[n++] = "-o";
    args[n++] = (char *)output;
    args[n] = NULL;
    if (prepare) /* the kernels stay in the folder; the command that measures with them, for another machine */
        return kernels ? print_command(args) : EXIT_USER;
    fprintf(stderr, "galvc profile: measuring on %lld %srank%s%s\n", np, cuda ? "GPU " : "", np > 1 ? "s" : "",
            quick ? " (quick)" : "; this takes a minute or two");
    int rc = run_program(args);
    if (made) { /* the kernels' folder, whatever got into it */
        unlink(arena_printf(a, "%s/kernels.so", tmp));
        unlink(arena_printf(a, "%s/kernels.o", tmp));
        unlink(arena_printf(a, "%s/kernels.c", tmp));
        rmdir(tmp);
    }
    if (rc < 0) return EXIT_USER;
    if (rc) fprintf(stderr, "galvc profile: error: the profiler failed (exit status %d)\n", rc);
    return rc == 0 ? 0 : rc == EXIT_USAGE ? EXIT_USAGE : EXIT_USER;
}

/* ---- galvc --calibrate ----------------------------------------------------------- */

static const char calibrate_usage[] =
    "usage: galvc --calibrate LOG.jsonl... --profile PROFILE.json -o NEW.json\n"
    "\n"
    "Refit a profile from training runs: each LOG is a ./train --log file (its first\n"
    "line holds the plan's predicted step time and its parts). Prints each run's\n"
    "prediction error before and after and writes the refitted profile.\n";

/* `galvc --calibrate LOG... --profile P -o OUT`. */
static int calibrate_command(Arena *a, int argc, char **argv) {
    const char *profile = NULL, *output = NULL;
    const char **logs = arena_alloc(a, sizeof *logs * (size_t)argc);
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(calibrate_usage, stdout);
            return 0;
        } else if (strncmp(arg, "--profile", 9) == 0 && (arg[9] == '=' || !arg[9])) {
            profile = option_value(argc, argv, &i, "--profile");
        } else if (strncmp(arg, "-o", 2) == 0) {
            output = option_value(argc, argv, &i, "-o");
        } else if (arg[0] == '-') {
            bad_usage("--calibrate: unknown option '%s'", arg);
        } else {
            logs[n++] = arg;
        }
    }
    if (!n) bad_usage("%s", "--calibrate: no logs (give ./train --log files)");
    if (!profile) bad_usage("%s", "--calibrate: give the profile the runs were planned with (--profile FILE)");
    if (!output) bad_usage("%s", "--calibrate: give where to write the refitted profile (-o FILE)");
    return pass_calibrate(logs, n, profile, output, stdout) ? 0 : EXIT_USER;
}

/* At exit: output that did not reach stdout (a full disk, a closed pipe's
 * EIO) is an error, however galvc ends. */
static void close_stdout(void) {
    if (fflush(stdout) == 0 && !ferror(stdout) && fclose(stdout) == 0) return;
    fprintf(stderr, "galvc: error: cannot write the output: %s\n", errno ? strerror(errno) : "write error");
    _exit(EXIT_USER);
}

int main(int argc, char **argv) {
    atexit(close_stdout);
    Arena *arena = arena_new();
    if (argc > 1 && strcmp(argv[1], "--calibrate") == 0) {
        int rc = calibrate_command(arena, argc - 1, argv + 1);
        arena_free(arena);
        return rc;
    }
    if (argc > 1 && strcmp(argv[1], "profile") == 0) {
        int rc = profile_command(arena, argc - 1, argv + 1);
        arena_free(arena);
        return rc;
    }
    if (argc > 1 && strcmp(argv[1], "report") == 0) {
        int rc = report_command(argc - 1, argv + 1);
        arena_free(arena);
        return rc;
    }
    Options opt = {0};
    parse_args(arena, argc, argv, &opt);
    int rc = compile(arena, &opt);
    arena_free(arena);
    return rc;
}
