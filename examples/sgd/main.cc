// Trains linear regression with the corpus TensorFlow graph variable_sgd_step (one SGD step:
// loss = mean((x W + b - y)^2), then W and b move against their gradients), compiled by
//   tfcompile --graph sgd_step.pbtxt --config sgd_step.config.pbtxt --cpp_class demo::SgdStep
//             --gen_name_to_index --gen_program_shape --out_metadata_object sgd_metadata.o ...
// W and b are the config's variables: the class owns their buffers (zeroed), and every Run()
// updates them in place, so calling Run() repeatedly is the training loop.
#include <cstdio>

#include "sgd.h"  // generated

int main() {
  demo::SgdStep step;
  // Four samples of y = x . (1, 2, 3) + 0.5, through the accessors named by the config.
  const float x[4][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 1}};
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 3; ++j) step.arg_x(i, j) = x[i][j];
    step.arg_y(i, 0) = x[i][0] * 1 + x[i][1] * 2 + x[i][2] * 3 + 0.5f;
  }
  for (int i = 0; i <= 300; ++i) {
    if (!step.Run()) {
      std::fprintf(stderr, "Run failed: %s\n", step.error_msg().c_str());
      return 1;
    }
    if (i % 100 == 0) std::printf("step %3d: loss %.6f\n", i, step.result_loss());
  }
  std::printf("W = {%.3f, %.3f, %.3f}, b = %.3f\n", step.var_W(0, 0), step.var_W(1, 0),
              step.var_W(2, 0), step.var_b());
  // Metadata generated on request: names (--gen_name_to_index) and the program shape
  // (--gen_program_shape, kept in the metadata object).
  std::printf("variable b is argument %d; signature %s\n",
              demo::SgdStep::LookupVariableIndex("b"), step.ProgramShape()->text);
  return 0;
}
