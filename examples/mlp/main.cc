// Runs the corpus MLP (mlp_forward.hlo: logits = relu(x W1 + b1) W2 + b2) compiled by
//   tfcompile --hlo mlp_forward.hlo --cpp_class demo::Mlp --arg_names x,w1,b1,w2,b2
//             --result_names logits --out_library mlp.so ...
// on inputs generated here, and prints the logits. With a file argument it also writes the
// logits there as raw float32 (tests compare them with the reference evaluator).
//
// Input element k of argument i is ((7k + 13i) mod 17 - 8) / 16: exact in float32, so any
// other program can regenerate the same inputs.
#include <cstdio>

#include "mlp.h"  // generated

static void Fill(float* data, int count, int arg) {
  for (int k = 0; k < count; ++k) {
    data[k] = static_cast<float>((7 * k + 13 * arg) % 17 - 8) / 16.0f;
  }
}

int main(int argc, char** argv) {
  demo::Mlp mlp;
  // Name-based accessors come from --arg_names; positional ones (arg0_data, ...) too.
  Fill(mlp.arg_x_data(), mlp.arg_x_count(), 0);
  for (int i = 1; i < demo::Mlp::kNumArgs; ++i) {
    Fill(static_cast<float*>(mlp.arg_data(i)),
         static_cast<int>(demo::Mlp::ArgSize(i) / sizeof(float)), i);
  }
  if (!mlp.Run()) {
    std::fprintf(stderr, "Run failed: %s\n", mlp.error_msg().c_str());
    return 1;
  }
  std::printf("logits (8 x 10):\n");
  for (int row = 0; row < 8; ++row) {
    for (int col = 0; col < 10; ++col) {
      std::printf(" %9.5f", mlp.result_logits(row, col));
    }
    std::printf("\n");
  }
  if (argc > 1) {
    std::FILE* out = std::fopen(argv[1], "wb");
    if (out == nullptr ||
        std::fwrite(mlp.result_logits_data(), 1, mlp.result_logits_size(), out) !=
            static_cast<std::size_t>(mlp.result_logits_size())) {
      std::fprintf(stderr, "cannot write %s\n", argv[1]);
      return 1;
    }
    std::fclose(out);
  }
  return 0;
}
