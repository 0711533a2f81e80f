// Stage 3: instrumentation. Finds every leaf-module call reached from forward on a *copy* of forward's
// graph (partial inlining), names each call by its receiver's prim::GetAttr chain, and inserts observe
// ops at the call sites that detectors target. The loaded module's own graphs are never mutated.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace at { class Tensor; }
namespace c10 { class IValue; }
namespace qreport::model { class Model; }

namespace qreport::instrumentation {

enum class Side { Input, Output };
const char* side_name(Side side);  // "input" / "output"

// Which axis of an activation holds its features or channels, as far as the graph tells.
enum class Layout { Unknown, Features, Channels };  // Features: the last axis; Channels: axis 1
struct LayoutGuess {
  Layout layout = Layout::Unknown;
  std::string because;  // e.g. "produced by encoder.linear1 (Linear)"
};

// The layout a torch.nn module's weight implies for its input: Linear, LSTM/GRU/RNN and LayerNorm apply
// their weights along the last axis, convolutions and batch/instance/group norms along axis 1. Unknown
// for weightless modules and for classes outside torch.nn.
Layout layout_of_module_type(const std::string& demangled_type_name);

// Receives every observed tensor with the id given to Instrumenter::observe().
using ObserveSink = std::function<void(int64_t id, const at::Tensor& value)>;
// Replaces the input of a call rewritten by Instrumenter::rewrite_input() (id as given there) with the
// tensor it returns; while none is set, the input passes unchanged.
using RewriteSink = std::function<at::Tensor(int64_t id, const at::Tensor& value)>;

// Asked before every call made skippable by Instrumenter::skippable() (id as given there): a defined tensor
// is taken as the call's output and the call does not run; an undefined one lets it run.
using SkipSink = std::function<at::Tensor(int64_t id)>;

class Instrumenter {
 public:
  // Copies forward's graph and inlines method calls until only leaf-module calls remain.
  explicit Instrumenter(const model::Model& model);
  ~Instrumenter();
  Instrumenter(const Instrumenter&) = delete;
  Instrumenter& operator=(const Instrumenter&) = delete;

  // fqn of every leaf call site, in graph order; a module called twice appears twice.
  const std::vector<std::string>& call_sites() const;
  bool has_call_site(const std::string& fqn) const;
  // The fqn whose call site observes `fqn`: itself, else its nearest ancestor with a call site
  // (PyTorch's _get_targeting_node: the children x.0, x.1 of a fused x observe x). nullopt: none.
  std::optional<std::string> resolve(const std::string& fqn) const;

  // Observes `side` of every call of `site_fqn` (a value returned by resolve) under `id`. Returns
  // the number of call sites instrumented; sites whose value is not a Tensor are skipped with a warning.
  int observe(const std::string& site_fqn, Side side, int64_t id);
  // Makes every call of `site_fqn` take its input through the RewriteSink of run() under `id` (--simulate
  // fake-quantizes it there). Returns the number of call sites rewritten.
  int rewrite_input(const std::string& site_fqn, int64_t id);

  // Wraps every call of `site_fqn` with a Tensor output so that the SkipSink of run() may supply its output
  // instead of running it (the sensitivity pass reuses the outputs of calls before the first layer that
  // differs from an earlier run: skip_calls.cpp). Call after observe() and rewrite_input() of the site: an
  // output observed afterwards would be observed only where the call runs. Returns the calls wrapped.
  int skippable(const std::string& site_fqn, int64_t id);

  // The op through which `fqn` is called when it has no call of its own but its weight is applied by
  // aten::linear or aten::convNd (MultiheadAttention's out_proj); "" for a module call.
  std::string functional_op(const std::string& fqn) const;
  // For such a layer: the layer applied alone exactly as its call applies it, to an input and a weight:
  // that op with the call's own other arguments (bias; stride, padding, dilation, groups), since
  // F.linear(x, self.fc.weight) passes no bias although fc has one. Those arguments must be constants or
  // attributes of the model (read through prim::GetAttr): nullopt where one is computed at run time, or
  // where the layer's calls pass different ones.
  using LayerApply = std::function<at::Tensor(const at::Tensor& input, const at::Tensor& weight)>;
  std::optional<LayerApply> functional_apply(const std::string& fqn) const;
  // Fused fast-path ops found in forward ("aten::_native_multi_head_attention (self_attn.out_proj)").
  // When there are any, the grad-mode queries that select them answer true: the slow path runs.
  const std::vector<std::string>& fast_paths() const;
  // The layout of the input of the first call of `site_fqn`, judged from the graph (feature_layout.cpp).
  LayoutGuess input_layout(const std::string& site_fqn) const;

  // IR of the instrumented copy, for tests and --verbose.
  std::string graph_text() const;
  // The observe ids whose value no later op of the forward writes (nor any alias of it): a reader may
  // take those values after the forward has moved on, without a copy (stable_values.cpp).
  std::set<int64_t> stable_observed_ids() const;
  // Pairs (earlier id, later id) of observe ids that always see the same tensor, one right after the
  // other, with nothing between them (shared_values.cpp): a point may take what the other computed.
  std::vector<std::pair<int64_t, int64_t>> observations_of_one_value() const;
  // Problems found while inlining or instrumenting (interface calls, non-tensor values, ...).
  const std::vector<std::string>& warnings() const;

  // Runs the instrumented forward on the model with forward's arguments (self excluded), sending every
  // observation to `sink`. Exceptions from the model propagate as thrown by LibTorch.
  void run(std::vector<c10::IValue> args, const ObserveSink& sink);
  // The same, with rewritten inputs going through `rewrite`; returns forward's result.
  c10::IValue run(std::vector<c10::IValue> args, const ObserveSink& sink, const RewriteSink& rewrite);
  // The same, with skippable calls asking `skip`.
  c10::IValue run(std::vector<c10::IValue> args, const ObserveSink& sink, const RewriteSink& rewrite,
                  const SkipSink& skip);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qreport::instrumentation
