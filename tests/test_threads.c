/* The library's thread pool (mmspcl.h, 15. Threads): every item of a job runs exactly once, on a
   thread index below the team asked for, whatever the team, the job size, nesting or callers on
   several threads at once; the default count (environment, CPU list parsing); the workers'
   priority (idle for the default count, normal for one asked for: Linux x86-64); and the shipped
   classifier's views with 1, 2 and 3 threads: the same bits. (The kernels' own 1-vs-2-thread
   checks are in test_kernels.c, whole encoders in test_roberta.c and test_clip.c.) */
#define _POSIX_C_SOURCE 200809L
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/test.h"
#ifdef MMSPCL__POOL
#include <pthread.h>
#endif

/* ---- 1. items of a job: each once, tid < team ---------------------------------------------- */
typedef struct job { int *count, *bad_tid, team, n; unsigned *val; } job;

static void count_task(void *ctx, int i, int tid) {
    job *j = (job *)ctx;
    unsigned h = 2166136261u ^ (unsigned)i;
    int k;
    for (k = 0; k < (i % 7) * 50; k++) h = (h ^ (unsigned)k) * 16777619u;   /* uneven items */
    __atomic_add_fetch(&j->count[i], 1, __ATOMIC_RELAXED);
    if (tid < 0 || tid >= j->team) __atomic_add_fetch(j->bad_tid, 1, __ATOMIC_RELAXED);
    j->val[i] = h;
}

/* runs `jobs` jobs of sizes 1..max_n on `team` threads; 1 when every item ran once */
static int run_jobs(int team, int jobs, int max_n, unsigned seed) {
    int *count = (int *)calloc((size_t)max_n, sizeof(int)), bad = 0, ok = 1, r, i;
    unsigned *val = (unsigned *)calloc((size_t)max_n, sizeof(unsigned));
    job j;
    j.count = count; j.bad_tid = &bad; j.team = team; j.val = val;
    for (r = 0; r < jobs && ok; r++) {
        seed = seed * 1103515245u + 12345u;
        j.n = 1 + (int)((seed >> 8) % (unsigned)max_n);
        memset(count, 0, sizeof(int) * (size_t)max_n);
        mmspcl__parallel(j.n, team, count_task, &j);
        for (i = 0; i < j.n; i++) ok &= count[i] == 1;
        for (i = j.n; i < max_n; i++) ok &= count[i] == 0;
    }
    free(count);
    free(val);
    return ok && !bad;
}

static void test_items(void) {
    int team;
    for (team = 1; team <= 4; team++) {
        mmspcl_set_threads(team);
        CHECK(run_jobs(team, 3000, 200, 7u + (unsigned)team), "team %d: an item ran twice, never or on a bad thread", team);
        CHECK(run_jobs(team, 200, 5000, 11u), "team %d, large jobs", team);
        CHECK(run_jobs(team > 1 ? team - 1 : 1, 500, 64, 3u), "team %d asked of a pool of %d", team - 1, team);
    }
    mmspcl_set_threads(2);
    mmspcl__parallel(0, 2, count_task, NULL);   /* nothing to do: fn never called (ctx NULL) */
    CHECK(1, "empty job");
}

/* ---- 2. a kernel called from inside a task runs on its own thread -------------------------- */
typedef struct nest { int *outer_ok; } nest;
static void nested_task(void *ctx, int i, int tid) {
    nest *n = (nest *)ctx;
    (void)tid;
    if (!run_jobs(2, 3, 50, 100u + (unsigned)i)) __atomic_store_n(n->outer_ok, 0, __ATOMIC_RELAXED);
}

static void test_nested(void) {
    int ok = 1;
    nest n;
    n.outer_ok = &ok;
    mmspcl_set_threads(2);
    mmspcl__parallel(16, 2, nested_task, &n);
    CHECK(ok, "a job inside a job");
}

/* ---- 3. callers on two threads at once (one owns the pool, the other runs alone) ------------ */
#ifdef MMSPCL__POOL
static void *caller(void *arg) {
    *(int *)arg = run_jobs(2, 1500, 100, 17u);
    return NULL;
}

static void test_concurrent(void) {
    pthread_t th[3];
    int ok[3] = {0, 0, 0}, i;
    mmspcl_set_threads(2);
    for (i = 0; i < 3; i++) CHECK(pthread_create(&th[i], NULL, caller, &ok[i]) == 0, "pthread_create");
    for (i = 0; i < 3; i++) pthread_join(th[i], NULL);
    CHECK(ok[0] && ok[1] && ok[2], "concurrent callers: %d %d %d", ok[0], ok[1], ok[2]);
}
#endif

/* ---- 4. the thread count ------------------------------------------------------------------- */
static void test_count(void) {
    const char *old = getenv("MMSPCL_NUM_THREADS");
    char *saved = old ? strdup(old) : NULL;
    CHECK(mmspcl_set_threads(3) == 3 && mmspcl_threads() == 3, "set 3");
    CHECK(mmspcl_set_threads(1) == 1 && mmspcl_threads() == 1, "set 1");
    setenv("MMSPCL_NUM_THREADS", "5", 1);
    CHECK(mmspcl_default_threads() == 5, "MMSPCL_NUM_THREADS=5: %d", mmspcl_default_threads());
    CHECK(mmspcl_set_threads(0) == 5 && mmspcl_threads() == 5, "set 0 takes the default");
    setenv("MMSPCL_NUM_THREADS", "zero", 1);   /* not a count: ignored */
    CHECK(mmspcl_default_threads() >= 1, "bad MMSPCL_NUM_THREADS");
    unsetenv("MMSPCL_NUM_THREADS");
    CHECK(mmspcl_set_threads(100000) == 256, "capped at 256");
    CHECK(mmspcl_default_threads() >= 1, "default %d", mmspcl_default_threads());
    printf("  default threads here: %d\n", mmspcl_default_threads());
#if !defined(MMSPCL_NO_STDIO) && defined(__linux__)
    CHECK(mmspcl__count_cpu_list("0-3,8,10-11\n") == 7, "cpu list 0-3,8,10-11");
    CHECK(mmspcl__count_cpu_list("0") == 1 && mmspcl__count_cpu_list("5-5") == 1, "one cpu");
    CHECK(mmspcl__count_cpu_list("") == 0 && mmspcl__count_cpu_list("x") == 0 && mmspcl__count_cpu_list("1-") == 0,
          "unreadable lists count 0");
    CHECK(mmspcl__affinity_cpus() >= 1, "affinity of this process: %d", mmspcl__affinity_cpus());
#endif
    if (saved) { setenv("MMSPCL_NUM_THREADS", saved, 1); free(saved); }
    mmspcl_set_threads(0);
}

/* ---- 5. the workers' priority: idle for the default count, normal for one asked for -------- */
#if defined(MMSPCL__POOL) && defined(__linux__) && defined(__x86_64__) && !defined(MMSPCL_NO_STDIO)
#include <dirent.h>
/* threads of this process with scheduling policy 5 (SCHED_IDLE): field 41 of /proc/self/task/T/stat */
static int idle_threads(void) {
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d))) {
        char path[300], line[1024], *q;
        FILE *f;
        int field;
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        if (!(f = fopen(path, "r"))) continue;
        q = fgets(line, sizeof line, f) ? strrchr(line, ')') : NULL;
        fclose(f);
        for (field = 2; q && field < 41; field++) q = strchr(q + 1, ' ');
        if (q && atoi(q + 1) == 5) n++;
    }
    closedir(d);
    return n;
}

static void test_priority(void) {
    const char *e1 = getenv("MMSPCL_NUM_THREADS"), *e2 = getenv("OMP_NUM_THREADS");
    char *s1 = e1 ? strdup(e1) : NULL, *s2 = e2 ? strdup(e2) : NULL;
    unsetenv("MMSPCL_NUM_THREADS");
    unsetenv("OMP_NUM_THREADS");
    mmspcl_set_threads(2);   /* asked for: normal priority */
    CHECK(run_jobs(2, 200, 64, 5u), "team 2 asked for");
    CHECK(idle_threads() == 0, "--threads 2: %d workers at idle priority", idle_threads());
    if (mmspcl_set_threads(0) >= 2) {   /* the default on a machine with 2 or more cores: idle */
        CHECK(run_jobs(2, 200, 64, 6u), "default team");
        CHECK(idle_threads() >= 1, "default count: no worker at idle priority");
        mmspcl_set_threads(2);   /* and back: the idle workers are replaced */
        CHECK(run_jobs(2, 200, 64, 8u), "team 2 asked for again");
        CHECK(idle_threads() == 0, "--threads 2 after the default: %d workers at idle priority", idle_threads());
    } else {
        printf("  one usable core: default count's idle priority not checked\n");
    }
    if (s1) { setenv("MMSPCL_NUM_THREADS", s1, 1); free(s1); }
    if (s2) { setenv("OMP_NUM_THREADS", s2, 1); free(s2); }
    mmspcl_set_threads(0);
}
#endif

/* ---- 6. the shipped classifier: 1, 2 and 3 threads give the same bits ---------------------- */
static void test_classifier(void) {
    static const mmspcl_turn turns[4] = {{"Rachel", "Guess what?"}, {"Ross", "What?"},
                                         {"Rachel", "I got the job!"}, {"Ross", "Oh my God, that's amazing."}};
    mmspcl_classifier m;
    mmspcl_error err;
    float *t[3], *v[3];
    int k, h;
    memset(&err, 0, sizeof err);
    if (mmspcl_classifier_load(&m, "weights/meld-text-q8_0.mmw", &err)) { CHECK(0, "load: %s", err.msg); return; }
    h = m.hidden;
    for (k = 0; k < 3; k++) {
        t[k] = (float *)malloc(sizeof(float) * 4 * (size_t)h);
        v[k] = (float *)malloc(sizeof(float) * 4 * (size_t)h);
        mmspcl_set_threads(k + 1);
        CHECK(mmspcl_classifier_features(&m, turns, 4, t[k], NULL, v[k], &err) == MMSPCL_OK, "features: %s", err.msg);
    }
    for (k = 1; k < 3; k++)
        CHECK(!memcmp(t[0], t[k], sizeof(float) * 4 * (size_t)h) && !memcmp(v[0], v[k], sizeof(float) * 4 * (size_t)h),
              "views with %d threads differ from 1 thread", k + 1);
    for (k = 0; k < 3; k++) { free(t[k]); free(v[k]); }
    mmspcl_classifier_free(&m);
    mmspcl_set_threads(0);
}

int main(void) {
    test_count();
    test_items();
    test_nested();
#ifdef MMSPCL__POOL
    test_concurrent();
#endif
#if defined(MMSPCL__POOL) && defined(__linux__) && defined(__x86_64__) && !defined(MMSPCL_NO_STDIO)
    test_priority();
#endif
    test_classifier();
    return TEST_END();
}
