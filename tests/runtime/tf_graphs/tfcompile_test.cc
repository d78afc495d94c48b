// The checks of tfcompile's own tests (tensorflow/compiler/aot/tests/tfcompile_test.cc),
// against the classes our command line generates for the same graphs and configs.
//
// Usage: tfcompile_test NAME...  runs the named tests (all when none is named) and prints
// "PASS name" or "FAIL name" with the failed checks; the exit status is the number of
// failed tests. tests/runtime/test_tfcompile_conformance.py builds and runs it.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "add.h"
#include "assert_eq.h"
#include "cond.h"
#include "gather.h"
#include "matmul.h"
#include "matmul_and_add.h"
#include "splits.h"
#include "top_k.h"
#include "variable.h"
#include "variable_readonly.h"
#include "variable_sequential_updates.h"

namespace {

int g_failed_checks = 0;

void Check(bool ok, const char* what, int line) {
  if (!ok) {
    ++g_failed_checks;
    std::printf("  line %d: %s\n", line, what);
  }
}

#define EXPECT(condition) Check((condition), #condition, __LINE__)
#define EXPECT_NEAR(want, got, tolerance) \
  Check(std::fabs(double(want) - double(got)) <= (tolerance), #got " near " #want, __LINE__)

void Add() {
  AddComp add;
  EXPECT(add.arg0_data() == add.arg_data(0));
  EXPECT(add.arg1_data() == add.arg_data(1));

  add.arg0() = 1;
  add.arg1() = 2;
  EXPECT(add.Run());
  EXPECT(add.error_msg() == "");
  EXPECT(add.result0() == 3);
  EXPECT(add.result0_data()[0] == 3);
  EXPECT(add.result0_data() == add.results()[0]);

  add.arg0_data()[0] = 123;
  add.arg1_data()[0] = 456;
  EXPECT(add.Run());
  EXPECT(add.error_msg() == "");
  EXPECT(add.result0() == 579);
  EXPECT(add.result0_data()[0] == 579);

  const AddComp& add_const = add;
  EXPECT(add_const.error_msg() == "");
  EXPECT(add_const.arg0() == 123);
  EXPECT(add_const.arg1_data()[0] == 456);
  EXPECT(add_const.arg1_data() == add.arg_data(1));
  EXPECT(add_const.result0() == 579);
  EXPECT(add_const.result0_data() == add_const.results()[0]);
}

void AddSetArg() {
  AddComp add(AddComp::AllocMode::RESULTS_PROFILES_AND_TEMPS_ONLY);
  EXPECT(add.arg0_data() == nullptr);
  alignas(32) std::int32_t arg_x = 10;
  alignas(32) std::int32_t arg_y = 32;
  add.set_arg0_data(&arg_x);
  add.set_arg1_data(&arg_y);
  EXPECT(add.arg0_data() == &arg_x);
  EXPECT(add.arg1_data() == add.arg_data(1));
  EXPECT(add.Run());
  EXPECT(add.error_msg() == "");
  EXPECT(add.result0() == 42);
  EXPECT(add.result0_data() == add.results()[0]);
}

void Cond() {
  CondComp cond;
  EXPECT(cond.arg2_data() == cond.arg_data(2));
  cond.arg1() = 10;
  cond.arg2() = 20;
  cond.arg0() = true;
  EXPECT(cond.Run());
  EXPECT(cond.result0() == 10);
  cond.arg0() = false;
  EXPECT(cond.Run());
  EXPECT(cond.result0() == 20);
  EXPECT(cond.result0_data() == cond.results()[0]);
}

void Gather() {
  GatherComp gather;
  const float params[4] = {1, 2, 3, 4};
  std::copy(params, params + 4, gather.arg0_data());
  const std::int32_t indices[2] = {1, 3};
  std::copy(indices, indices + 2, gather.arg1_data());
  EXPECT(gather.Run());
  EXPECT(gather.error_msg() == "");
  const float results[2] = {2, 4};
  for (int i = 0; i < 2; ++i) {
    EXPECT(gather.result0(i) == results[i]);
    EXPECT(gather.result0_data()[i] == results[i]);
  }
  const GatherComp& gather_const = gather;
  for (int i = 0; i < 4; ++i) EXPECT(gather_const.arg0(i) == params[i]);
  for (int i = 0; i < 2; ++i) EXPECT(gather_const.arg1(i) == indices[i]);
}

void MatMul() {
  foo::bar::MatMulComp matmul;
  EXPECT(matmul.arg0_data() == matmul.arg_data(0));
  matmul.arg0(0, 0) = 1;
  matmul.arg0(0, 1) = 2;
  matmul.arg0(0, 2) = 3;
  matmul.arg0(1, 0) = 4;
  matmul.arg0(1, 1) = 5;
  matmul.arg0(1, 2) = 6;
  matmul.arg1(0, 0) = 7;
  matmul.arg1(0, 1) = 8;
  matmul.arg1(1, 0) = 9;
  matmul.arg1(1, 1) = 10;
  matmul.arg1(2, 0) = 11;
  matmul.arg1(2, 1) = 12;
  EXPECT(matmul.Run());
  EXPECT(matmul.error_msg() == "");
  const float results[4] = {58, 64, 139, 154};
  for (int i = 0; i < 4; ++i) {
    EXPECT(matmul.result0(i / 2, i % 2) == results[i]);
    EXPECT(matmul.result0_data()[i] == results[i]);
  }

  const float args[12] = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120};
  std::copy(args + 0, args + 6, matmul.arg0_data());
  std::copy(args + 6, args + 12, matmul.arg1_data());
  EXPECT(matmul.Run());
  const float results10[4] = {5800, 6400, 13900, 15400};
  const foo::bar::MatMulComp& matmul_const = matmul;
  for (int i = 0; i < 4; ++i) EXPECT(matmul_const.result0(i / 2, i % 2) == results10[i]);
  for (int i = 0; i < 6; ++i) EXPECT(matmul_const.arg1(i / 2, i % 2) == args[i + 6]);
}

void MatMulSetArg() {
  foo::bar::MatMulComp matmul(foo::bar::MatMulComp::AllocMode::RESULTS_PROFILES_AND_TEMPS_ONLY);
  alignas(16) float arg0[2][3] = {{1, 2, 3}, {4, 5, 6}};
  alignas(16) float arg1[3][2] = {{7, 8}, {9, 10}, {11, 12}};
  matmul.set_arg0_data(&arg0);
  matmul.set_arg1_data(&arg1);
  EXPECT(matmul.arg0_data() == &arg0[0][0]);
  EXPECT(matmul.Run());
  const float results[4] = {58, 64, 139, 154};
  for (int i = 0; i < 4; ++i) EXPECT(matmul.result0(i / 2, i % 2) == results[i]);
}

void MatMulAndAdd() {
  ::foo::bar::MatMulAndAddComp muladd;
  const float args[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  std::copy(args + 0, args + 4, muladd.arg0_data());
  std::copy(args + 4, args + 8, muladd.arg1_data());
  EXPECT(muladd.Run());
  const float results0[4] = {19, 22, 43, 50};
  const float results1[4] = {6, 8, 10, 12};
  for (int i = 0; i < 4; ++i) {
    EXPECT(muladd.result0(i / 2, i % 2) == results0[i]);
    EXPECT(muladd.result1(i / 2, i % 2) == results1[i]);
  }

  // The same through the names of the config's feeds and fetches.
  const float named[8] = {10, 20, 30, 40, 50, 60, 70, 80};
  std::copy(named + 0, named + 4, muladd.arg_x_data());
  std::copy(named + 4, named + 8, muladd.arg_y_data());
  EXPECT(muladd.Run());
  EXPECT(muladd.error_msg() == "");
  const float named0[4] = {1900, 2200, 4300, 5000};
  const float named1[4] = {60, 80, 100, 120};
  for (int i = 0; i < 4; ++i) {
    EXPECT(muladd.result_x_y_prod(i / 2, i % 2) == named0[i]);
    EXPECT(muladd.result_x_y_prod_data()[i] == named0[i]);
    EXPECT(muladd.result_x_y_sum(i / 2, i % 2) == named1[i]);
    EXPECT(muladd.result_x_y_sum_data()[i] == named1[i]);
  }
  EXPECT(muladd.result_x_y_prod_data() == muladd.results()[0]);
  EXPECT(muladd.result_x_y_sum_data() == muladd.results()[1]);
  const ::foo::bar::MatMulAndAddComp& muladd_const = muladd;
  for (int i = 0; i < 4; ++i) EXPECT(muladd_const.arg_y(i / 2, i % 2) == named[i + 4]);
  EXPECT(muladd_const.arg_x_data() == muladd.arg_data(0));
}

void Splits() {
  SplitsComp fn;
  fn.arg0(0, 0) = 1;
  fn.arg0(0, 1) = 2;
  fn.arg0(1, 0) = 3;
  fn.arg0(1, 1) = 4;
  fn.arg1(0, 0) = 10;
  fn.arg1(0, 1) = 20;
  fn.arg1(1, 0) = 30;
  fn.arg1(1, 1) = 40;
  EXPECT(fn.Run());
  EXPECT(fn.error_msg() == "");
  const float expected[] = {7.86375557e+10f, 1.34274679e+11f, 1.92741717e+12f, 3.29964742e+12f};
  EXPECT_NEAR(expected[0], fn.result0(0, 0), 1e4);
  EXPECT_NEAR(expected[1], fn.result0(0, 1), 1e4);
  EXPECT_NEAR(expected[2], fn.result0(1, 0), 1e4);
  EXPECT_NEAR(expected[3], fn.result0(1, 1), 1e4);
}

void TopK() {
  TopKComp fn;
  const float x[5] = {4, 1, 4, 4, 3};
  for (int i = 0; i < 5; ++i) fn.arg0(i) = x[i];
  EXPECT(fn.Run());
  EXPECT(fn.error_msg() == "");
  EXPECT(fn.result0(0) == 4);
  EXPECT(fn.result0(1) == 4);
  EXPECT(fn.result1(0) == 0);
  EXPECT(fn.result1(1) == 2);
}

void VariableReadonly() {
  VariableReadonlyComp fn;
  float x = 23;
  fn.set_var_x_data(&x);
  EXPECT(fn.Run());
  EXPECT(fn.result0() == 65);
  EXPECT(fn.var_x() == 23);
  EXPECT(x == 23);
}

void Variable() {
  VariableComp fn;
  float x = 23;
  fn.set_var_x_data(&x);
  EXPECT(fn.Run());
  EXPECT(fn.result0(0, 0) == 23);
  EXPECT(fn.result0(1, 0) == 65);
  EXPECT(fn.var_x() == 65);
  EXPECT(fn.var_x_data() == &x);
  EXPECT(x == 65);
  EXPECT(fn.Run());
  EXPECT(fn.result0(0, 0) == 65);
  EXPECT(fn.result0(1, 0) == 107);
  EXPECT(fn.var_x() == 107);
  EXPECT(x == 107);
}

void VariableSequentialUpdates() {
  // x[n+1] = x[n] - 0.1 * (x[n] + y), three steps per run.
  VariableSequentialUpdatesComp fn;
  fn.var_x() = 2;
  *const_cast<float*>(fn.var_y_data()) = 1;
  EXPECT(fn.Run());
  EXPECT_NEAR(fn.var_x(), 1.187f, 1e-6);
  const float y = 1;
  fn.set_var_y_data(&y);
  EXPECT(fn.Run());
  EXPECT_NEAR(fn.var_x(), 0.594322f, 1e-6);
  EXPECT_NEAR(fn.result0(), 0.594322f, 1e-6);
}

void VariableSequentialUpdatesNoAlloc() {
  VariableSequentialUpdatesComp fn(
      VariableSequentialUpdatesComp::AllocMode::RESULTS_PROFILES_AND_TEMPS_ONLY);
  float x = 2;
  float y = 1;
  fn.set_var_x_data(&x);
  fn.set_var_y_data(&y);
  EXPECT(fn.Run());
  EXPECT_NEAR(x, 1.187f, 1e-6);
  EXPECT(fn.Run());
  EXPECT_NEAR(x, 0.594322f, 1e-6);
  EXPECT(y == 1);
}

void AssertEqAndReturnDiff() {
  // Assert compiles to nothing, so the run succeeds although x != y.
  AssertComp assert_comp;
  assert_comp.arg0() = 2;
  assert_comp.arg1() = 1;
  EXPECT(assert_comp.Run());
  EXPECT(assert_comp.error_msg() == "");
  EXPECT(assert_comp.result0() == 1);
  EXPECT(assert_comp.result0_data() == assert_comp.results()[0]);
}

void LookupNameIndex() {
  // Generated without --gen_name_to_index: no name tables.
  AddComp add;
  EXPECT(!add.HasNameIndices());
  EXPECT(add.LookupArgIndex("x") == -1);
  EXPECT(AddComp::LookupResultIndex("x_y_sum") == -1);

  ::foo::bar::MatMulAndAddComp muladd;
  EXPECT(muladd.HasNameIndices());
  EXPECT(muladd.LookupArgIndex("x") == 0);
  EXPECT(muladd.LookupArgIndex("y") == 1);
  EXPECT(muladd.LookupArgIndex("") == -1);
  EXPECT(muladd.LookupArgIndex("x_hold") == -1);
  EXPECT(muladd.LookupArgIndex("x_y_prod") == -1);
  EXPECT(muladd.LookupResultIndex("x_y_prod") == 0);
  EXPECT(muladd.LookupResultIndex(std::string("x_y_sum")) == 1);
  EXPECT(muladd.LookupResultIndex("x") == -1);
  EXPECT(muladd.LookupResultIndex("y_hold") == -1);

  // Variables are looked up by name and give their argument index.
  EXPECT(VariableSequentialUpdatesComp::HasNameIndices());
  EXPECT(VariableSequentialUpdatesComp::LookupVariableIndex("x") == 0);
  EXPECT(VariableSequentialUpdatesComp::LookupVariableIndex("y") == 1);
  EXPECT(VariableSequentialUpdatesComp::LookupVariableIndex("z") == -1);
  EXPECT(VariableSequentialUpdatesComp::LookupArgIndex("x") == -1);
  EXPECT(VariableSequentialUpdatesComp::kNumVariables == 2);
  EXPECT(VariableComp::LookupVariableIndex("x") == -1);  // no name tables
}

bool IsF32(const tfcompile_shape_info& shape, std::int64_t rows, std::int64_t cols) {
  return std::strcmp(shape.element_type, "f32") == 0 && shape.rank == 2 &&
         shape.dims[0] == rows && shape.dims[1] == cols;
}

void ProgramShape() {
  AddComp add;
  EXPECT(add.ProgramShape() == nullptr);

  // muladd keeps its program shape in the metadata object (--out_metadata_object).
  ::foo::bar::MatMulAndAddComp muladd;
  const tfcompile_program_shape* shape = muladd.ProgramShape();
  EXPECT(shape != nullptr);
  if (shape == nullptr) return;
  EXPECT(shape->num_parameters == 2);
  EXPECT(IsF32(shape->parameters[0], 2, 2));
  EXPECT(IsF32(shape->parameters[1], 2, 2));
  EXPECT(shape->num_results == 2);
  EXPECT(IsF32(shape->results[0], 2, 2));
  EXPECT(IsF32(shape->results[1], 2, 2));
  EXPECT(std::string(shape->text) ==
         "(arg0: f32[2,2], arg1: f32[2,2]) -> (f32[2,2], f32[2,2])");

  // The variables' library keeps it in the header.
  const tfcompile_program_shape* vars = VariableComp::StaticProgramShape();
  EXPECT(vars != nullptr);
  if (vars == nullptr) return;
  EXPECT(vars->num_parameters == 1 && vars->parameters[0].rank == 1);
  EXPECT(vars->num_results == 2 && IsF32(vars->results[0], 2, 1));
  EXPECT(std::string(vars->text) == "(arg0: f32[1]) -> (f32[2,1], f32[1])");
}

struct Test {
  const char* name;
  void (*run)();
};

const Test kTests[] = {
    {"Add", Add},
    {"AddSetArg", AddSetArg},
    {"Cond", Cond},
    {"Gather", Gather},
    {"MatMul", MatMul},
    {"MatMulSetArg", MatMulSetArg},
    {"MatMulAndAdd", MatMulAndAdd},
    {"Splits", Splits},
    {"TopK", TopK},
    {"VariableReadonly", VariableReadonly},
    {"Variable", Variable},
    {"VariableSequentialUpdates", VariableSequentialUpdates},
    {"VariableSequentialUpdatesNoAlloc", VariableSequentialUpdatesNoAlloc},
    {"AssertEqAndReturnDiff", AssertEqAndReturnDiff},
    {"LookupNameIndex", LookupNameIndex},
    {"ProgramShape", ProgramShape},
};

}  // namespace

int main(int argc, char** argv) {
  int failed = 0;
  for (const Test& test : kTests) {
    bool wanted = argc == 1;
    for (int i = 1; i < argc; ++i) wanted = wanted || std::strcmp(argv[i], test.name) == 0;
    if (!wanted) continue;
    g_failed_checks = 0;
    test.run();
    std::printf("%s %s\n", g_failed_checks == 0 ? "PASS" : "FAIL", test.name);
    failed += g_failed_checks == 0 ? 0 : 1;
  }
  return failed;
}
