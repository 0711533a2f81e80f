// Internal to lib/exported: the archive reader, the checked JSON walk, and the compiled program the
// interpreter runs. Only the 2.x build compiles the parts that need LibTorch 2.x (supported()).
#pragma once
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/ivalue.h>
#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "exported/exported.h"

namespace caffe2::serialize { class PyTorchStreamReader; }

namespace qreport::exported {

// One JSON value and where it sits ("models/model.json: $.graph_module.graph.nodes[3].target"); every
// accessor throws InputError naming that place. The path is built only for values the walk visits.
class Json {
 public:
  Json(const nlohmann::json* j, std::string path) : j_(j), path_(std::move(path)) {}
  const nlohmann::json& raw() const { return *j_; }
  const std::string& path() const { return path_; }
  bool has(const char* key) const;
  Json operator[](const char* key) const;  // a required member
  Json at(size_t i) const;                 // an element of an array
  size_t size() const;                     // of an array (throws for other types)
  bool is_null() const { return j_->is_null(); }
  std::string str() const;
  int64_t int64() const;
  double number() const;  // also "Infinity", "-Infinity", "NaN", as the serializer writes them
  bool boolean() const;
  // The one member of a union object ({"as_tensor": {...}}): its key, and the value as out.
  std::string union_kind(Json* value) const;
  [[noreturn]] void fail(const std::string& what) const;

 private:
  const nlohmann::json* j_;
  std::string path_;
};

// Parses JSON text with nesting bounded (deep nesting would exhaust the stack of later walks); throws
// InputError naming `name`.
nlohmann::json parse_json(const std::string& text, const std::string& name);

// The archive's records, read with bounds: a record larger than the file (a stored record never is; a
// hostile central directory can declare terabytes) is refused before anything is allocated.
class Archive {
 public:
  explicit Archive(const std::string& path);
  ~Archive();
  const std::string& path() const { return path_; }
  bool has(const std::string& name) const;                 // relative to the root folder
  std::string text(const std::string& name) const;         // a whole record as bytes
  at::DataPtr data(const std::string& name, size_t* size) const;
  std::vector<std::string> records() const;
  [[noreturn]] void fail(const std::string& what) const;   // InputError "model 'PATH' ...: what"

 private:
  std::string path_;
  size_t file_size_ = 0;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader_;
};

// A value of the graph: a slot of the interpreter's environment.
using Slot = int;

// Where one operator argument comes from at run time.
struct Operand {
  enum Kind { Constant, Value, TensorList, OptionalTensorList, IntList } kind = Constant;
  c10::IValue constant;
  Slot slot = -1;
  std::vector<Slot> slots;     // TensorList / OptionalTensorList (-1: None) / IntList (-1: use ints[i])
  std::vector<int64_t> ints;   // IntList's constant entries
  bool wrap_number = false;    // a Value holding a number where the schema wants a Tensor
};

// A return of the operator: dropped, into one slot, or a list unpacked into slots.
struct Result {
  enum Kind { Drop, Value, List } kind = Drop;
  Slot slot = -1;
  std::vector<Slot> slots;
};

// One node, compiled against this LibTorch's operator schema at load.
struct Step {
  std::string name, target;
  enum Kind { Dispatch, SymSize, SymArith } kind = Dispatch;
  std::optional<c10::OperatorHandle> op;
  std::string arith;  // SymArith: "add", "sub", "mul", "floordiv", "mod"
  std::vector<Operand> args;
  std::vector<Result> results;
  std::vector<Slot> release;                                // values whose last use is this step
  std::vector<std::pair<Slot, int64_t>> observe_before;     // (value, id): inputs of a module call
  std::vector<std::pair<Slot, int64_t>> observe_after;      // outputs
  std::vector<std::pair<Slot, int64_t>> rewrite_before;     // (value, id): this node's operand replaced
  at::Tensor weight_swap;  // defined: this Linear/Conv node's weight operand (args[1]) for Program::swap_weight
  // Program::skippable: this node starts a call whose output skip_output may be handed to run(), which
  // then goes on at step skip_end (one past the call's last node).
  int64_t skip_id = -1;
  size_t skip_end = 0;
  Slot skip_output = -1;
};

// A user input's expected metadata: dtype, rank and per dimension a size or the batch symbol.
struct InputSpec {
  std::string name;
  Slot slot = -1;
  c10::ScalarType dtype = c10::ScalarType::Float;
  std::vector<int64_t> sizes;  // -1: the dynamic batch dimension
  int64_t batch_min = 0, batch_max = INT64_MAX;
};

struct Program::Impl {
  std::string path, schema_version, torch_version;
  std::vector<Module> modules;
  std::vector<ModuleCall> calls;
  std::vector<std::string> input_names;
  std::vector<InputSpec> inputs;
  std::map<std::string, Slot> slot_of;            // graph value name -> slot
  std::map<std::string, at::Tensor> state;        // eager fqn -> parameter, buffer or constant
  std::vector<std::pair<Slot, at::Tensor>> state_slots;
  std::map<Slot, std::string> state_name;         // state slot -> eager fqn
  std::vector<Step> steps;
  std::vector<Slot> outputs;                      // user outputs
  size_t slot_count = 0;
  std::vector<bool> slot_tensor;                  // per slot: holds a tensor (else a symbolic number)
  std::vector<bool> slot_state;                   // per slot: a parameter, buffer or constant
};

// The parts of load, in order (program.cpp calls them).
// Tensors of data/weights/* or data/constants/* by their config: eager fqn -> tensor.
std::map<std::string, at::Tensor> read_payloads(const Archive& archive, const std::string& config_record,
                                                const std::string& dir);
// Graph nodes -> steps; throws InputError for nodes that cannot run.
void compile_nodes(const Json& graph, Program::Impl& impl);
// Module calls and the module list from nn_module_stack and module_call_graph.
void find_module_calls(const Json& graph, const Json& module_call_graph, Program::Impl& impl);
// The value slots a step reads (its operands, list elements included) and writes.
std::vector<Slot> uses(const Step& step);
std::vector<Slot> defs(const Step& step);
// A number as the 0-dim "wrapped number" tensor Python's argument parser makes of it.
at::Tensor wrapped_number(const c10::IValue& v);
// c10 dtype of the serializer's ScalarType enum; throws through `where` for unknown ones.
c10::ScalarType scalar_type(const Json& where);

}  // namespace qreport::exported
