/* Unit tests: Fluentd tag pattern semantics (aggregator/tagmatch.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "aggregator/tagmatch.h"

static void test_single_star(void **st)
{
    assert_true(route_pattern_match("a.*", "a.b"));
    assert_false(route_pattern_match("a.*", "a.b.c"));
    assert_false(route_pattern_match("a.*", "a"));
    assert_true(route_pattern_match("*.b", "x.b"));
    assert_true(route_pattern_match("a.*.c", "a.xyz.c"));
    assert_false(route_pattern_match("a.*.c", "a.x.y.c"));
    assert_true(route_pattern_match("*", "anything"));
    assert_false(route_pattern_match("*", "two.parts"));
}

static void test_double_star(void **st)
{
    assert_true(route_pattern_match("**", ""));
    assert_true(route_pattern_match("**", "a.b.c"));
    assert_true(route_pattern_match("a.**", "a"));
    assert_true(route_pattern_match("a.**", "a.b"));
    assert_true(route_pattern_match("a.**", "a.b.c"));
    assert_false(route_pattern_match("a.**", "ab"));
    assert_false(route_pattern_match("a.**", "b.a"));
    assert_true(route_pattern_match("**.log", "kube.var.log"));
    assert_true(route_pattern_match("**.log", "log"));
    assert_false(route_pattern_match("**.log", "kube.varlog"));
    assert_true(route_pattern_match("a.**.z", "a.z"));
    assert_true(route_pattern_match("a.**.z", "a.b.c.z"));
    assert_false(route_pattern_match("a.**.z", "a.b.c"));
}

static void test_alternatives(void **st)
{
    assert_true(route_pattern_match("{a,b}.x", "a.x"));
    assert_true(route_pattern_match("{a,b}.x", "b.x"));
    assert_false(route_pattern_match("{a,b}.x", "c.x"));
    assert_true(route_pattern_match("app.{web,api}.**", "app.api.v1.users"));
    assert_true(route_pattern_match("{kube.**,system.*}", "system.auth"));
    assert_false(route_pattern_match("{kube.**,system.*}", "system.a.b"));
    assert_true(route_pattern_match("x{a,{b,c}}y", "xcy"));
}

static void test_pattern_lists(void **st)
{
    assert_true(route_patterns_match("a.* b.**", "b.c.d"));
    assert_true(route_patterns_match("  a.*   b.** ", "a.x"));
    assert_false(route_patterns_match("a.* b.**", "c"));
    assert_false(route_patterns_match("", "c"));
}

static void test_literal(void **st)
{
    assert_true(route_pattern_match("kube.var.log.containers.x.log", "kube.var.log.containers.x.log"));
    assert_false(route_pattern_match("kube", "kube.x"));
    assert_false(route_pattern_match("kube.x", "kube"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_star), cmocka_unit_test(test_double_star), cmocka_unit_test(test_alternatives),
        cmocka_unit_test(test_pattern_lists), cmocka_unit_test(test_literal),
    };
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
