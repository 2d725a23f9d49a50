/* emu_check.h — what the CUDA emulator's self-tests (test_emu_libs.cpp, test_emu_runtime.cu)
 * share: CHECK, which counts failures and goes on, and expect_fail, which runs code in a child
 * process that must die with a given message. */
#ifndef KAO_CUDA_EMU_CHECK_H
#define KAO_CUDA_EMU_CHECK_H

#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

static int failures = 0;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* Runs f in a child, which must not finish: with must_abort, it must abort with a message holding
 * want on stderr; otherwise any death will do (a fault, which ASan turns into an exit status). */
template <class F> static void expect_fail(const char *want, F f, bool must_abort = true) {
    int fds[2];
    if (pipe(fds) != 0) abort();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        f();
        _exit(0);
    }
    close(fds[1]);
    std::string text;
    char buf[256];
    for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, (size_t)n);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (must_abort) {
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "expected an abort for '%s'", want);
        CHECK(text.find(want) != std::string::npos, "message '%s' lacks '%s'", text.c_str(), want);
    } else {
        CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0), "expected the child to die: %s", want);
    }
}

#endif
