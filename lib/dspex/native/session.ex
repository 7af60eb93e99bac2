defmodule DSPex.Native.Session do
  @moduledoc """
  An isolated DSPy workspace: its own programs, its own LM and settings, its own counters.

  A session is a term like any other. Pass it to other processes, keep it in ETS or a
  GenServer's state; when the last reference is gone and the BEAM garbage-collects it, its
  Python objects are freed by the worker pool. `close/1` frees them at once.

  Two sessions can both hold a program called `"prog_1"`: IDs are per session, and so is
  everything else. Many calls, on one session or many, run at once on the pool's Python
  threads.

  ## Example

      iex> {:ok, session} = DSPex.Native.Session.open(name: "docs", lm: {:dummy, [%{"answer" => "Paris"}]})
      iex> :ok = DSPex.Native.Session.create_program(session, "qa", signature: "question -> answer")
      iex> DSPex.Native.Session.execute(session, "qa", %{question: "Capital of France?"})
      {:ok, %{"answer" => "Paris"}}

  ## What a session takes

  * LM specs (`lm:`), `cache:` and adapters: `DSPex.Native.LM`;
  * signatures and reserved field names: `DSPex.Native.Signature`;
  * ReAct tools: `DSPex.Native.Tool`; optimizers for `compile/4`: `DSPex.Native.Optimizer`.
  * any other part of DSPy, and programs built in Python: `DSPex.Native.Py`, `put_program/4`.

  ## Timeouts and cancellation

  Every function that talks to Python takes `timeout:` (milliseconds or `:infinity`;
  default 30 000 for `execute/4`, 15 000 otherwise, counted from the moment the call is
  queued). A call that times out returns `{:error, %DSPex.Native.Error{reason: :timeout}}`
  and its work stops: a job still queued is dropped; a running job is interrupted by an
  asynchronous `dspex_bridge.Cancelled` exception raised in its Python code, and its worker
  goes back to serving others. Python blocked inside C (waiting on a socket) sees the
  exception when it returns to Python. A late answer never reaches the caller's mailbox.

  The same happens when the calling process dies while its job is queued or running.

  ## Concurrent changes

  Calls on one session may overlap. An `execute/4` that has started runs to completion with
  the program and LM it started with, even if `delete_program/2`, `reset/1`, `configure/2`
  or `close/1` happen meanwhile; calls that start afterwards see the change (`:not_found`,
  the new LM, `:closed`).
  """

  alias DSPex.Native.{Error, Requests}

  @enforce_keys [:resource, :id, :name]
  defstruct [:resource, :id, :name, node: nil]

  @typedoc "A session handle."
  @type t :: %__MODULE__{
          resource: reference(),
          id: pos_integer(),
          name: String.t() | nil,
          node: node() | nil
        }

  @typedoc "See the module doc."
  @type lm_spec ::
          nil
          | String.t()
          | {String.t(), keyword()}
          | {:dummy, [map()] | %{String.t() => map()}}

  @typedoc "A program ID: a string, or an atom taken as its name."
  @type program_id :: String.t() | atom()

  @typedoc "A DSPy string signature or a structured one; see the module doc."
  @type signature :: String.t() | map() | keyword()

  @doc """
  Opens a session.

  Options: `:name` (a string shown by `inspect/1` and `info/1`), `:lm` (an `t:lm_spec/0`),
  `:owner` (a pid: the session is closed when that process exits, wherever its handle has
  been copied to; without it, garbage collection alone decides), `:timeout`. `open/0` opens
  an unnamed session with no LM.

  Where the session lives: `node: node` opens it on another node of the cluster that runs
  `:dspex_native` (see `DSPex.Native.Remote`); `placement: :least_loaded` picks the
  connected node with the fewest queued jobs per worker (then the fewest sessions), and
  `placement: {:nodes, [node]}` picks among those; `:local` (the default) is this node. A
  remote session works with every function here, from any node, with the same results.

  ## Examples

      iex> {:ok, session} = DSPex.Native.Session.open(name: "user_a", lm: {:dummy, [%{"answer" => "4"}]})
      iex> session.name
      "user_a"
  """
  @spec open(keyword()) :: {:ok, t()} | {:error, Error.t()}
  defdelegate open(opts \\ []), to: Requests

  @doc """
  Like `open/1`, but raises `DSPex.Native.Error`.

  ## Examples

      iex> session = DSPex.Native.Session.open!(name: "scratch")
      iex> is_integer(session.id)
      true
  """
  @spec open!(keyword()) :: t()
  def open!(opts \\ []), do: bang(open(opts))

  @doc """
  Closes the session and frees its Python objects. Idempotent; afterwards every call on it
  returns `{:error, %DSPex.Native.Error{reason: :closed}}`.

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> DSPex.Native.Session.close(session)
      :ok
      iex> {:error, %DSPex.Native.Error{reason: :closed}} = DSPex.Native.Session.list_programs(session)
  """
  @spec close(t()) :: :ok
  defdelegate close(session), to: Requests

  @doc """
  Drops every program; the session and its LM stay.

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> :ok = DSPex.Native.Session.create_program(session, "p", signature: "q -> a")
      iex> DSPex.Native.Session.reset(session)
      :ok
      iex> DSPex.Native.Session.list_programs(session)
      {:ok, []}
  """
  @spec reset(t(), keyword()) :: :ok | {:error, Error.t()}
  defdelegate reset(session, opts \\ []), to: Requests

  @doc """
  Changes the session's settings. Options: `:lm` (an `t:lm_spec/0`; `nil` removes it; left
  as it is when not given), `:timeout`. Executions already running keep the LM they started
  with. If the new LM cannot be built, the session keeps its current one.

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> DSPex.Native.Session.configure(session, lm: {:dummy, [%{"answer" => "yes"}]})
      :ok
  """
  @spec configure(t(), keyword()) :: :ok | {:error, Error.t()}
  defdelegate configure(session, opts), to: Requests

  @doc """
  Creates a program in the session.

  Options: `:signature` (required; see the module doc), `:module` (`:predict`, the default,
  `:chain_of_thought`, `:react`, or `{:custom, "ClassName"}` for a class loaded with
  `load_module/4`, where the signature is optional), `:replace` (overwrite an existing
  program with this ID instead of returning `:already_exists`), `:adapter` (this program's
  own, over the session's; see `DSPex.Native.LM`), `:timeout`. `module: :react` takes
  `:tools`, `:max_iters` and `:tool_timeout` (see `DSPex.Native.Tool`).

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> DSPex.Native.Session.create_program(session, "qa", signature: "question -> answer")
      :ok
      iex> {:error, %DSPex.Native.Error{reason: :already_exists}} =
      ...>   DSPex.Native.Session.create_program(session, "qa", signature: "question -> answer")
      iex> DSPex.Native.Session.create_program(session, :qa,
      ...>   signature: %{inputs: [question: "a question"], outputs: [:answer]},
      ...>   module: :chain_of_thought, replace: true)
      :ok
  """
  @spec create_program(t(), program_id(), keyword()) :: :ok | {:error, Error.t()}
  defdelegate create_program(session, id, opts), to: Requests

  @doc """
  Like `create_program/3`, but raises `DSPex.Native.Error`.

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> DSPex.Native.Session.create_program!(session, "qa", signature: "question -> answer")
      :ok
  """
  @spec create_program!(t(), program_id(), keyword()) :: :ok
  def create_program!(session, id, opts), do: bang(create_program(session, id, opts))

  @doc """
  Runs a program. `inputs` is a map with atom or string keys naming the signature's input
  fields; the result maps each output field (as a string) to its value, plus `"reasoning"`
  for `:chain_of_thought`. Options: `:timeout` (default 30 s).

  ## Examples

      iex> session = DSPex.Native.Session.open!(lm: {:dummy, [%{"answer" => "4"}]})
      iex> :ok = DSPex.Native.Session.create_program(session, "math", signature: "question -> answer")
      iex> DSPex.Native.Session.execute(session, "math", %{question: "2 + 2?"})
      {:ok, %{"answer" => "4"}}
      iex> {:error, %DSPex.Native.Error{reason: :not_found}} =
      ...>   DSPex.Native.Session.execute(session, "nope", %{question: "?"})
  """
  @spec execute(t(), program_id(), map(), keyword()) :: {:ok, map()} | {:error, Error.t()}
  defdelegate execute(session, id, inputs, opts \\ []), to: Requests

  @doc """
  Like `execute/4`, but returns the outputs or raises `DSPex.Native.Error`.

  ## Examples

      iex> session = DSPex.Native.Session.open!(lm: {:dummy, [%{"answer" => "4"}]})
      iex> DSPex.Native.Session.create_program!(session, "math", signature: "question -> answer")
      iex> DSPex.Native.Session.execute!(session, "math", %{question: "2 + 2?"})
      %{"answer" => "4"}
  """
  @spec execute!(t(), program_id(), map(), keyword()) :: map()
  def execute!(session, id, inputs, opts \\ []), do: bang(execute(session, id, inputs, opts))

  @doc """
  Runs program `id` like `execute/4`, as a lazy `Stream` of what it produces:
  `{:chunk, field, text}` for each piece of a streamed output field (by default every
  string output of the program's last predictor; `fields:` picks them), `{:status, text}`
  for DSPy's status messages when `status: true`, and last `{:done, outputs}`, exactly what
  `execute/4` returns. The job starts when enumeration starts; on failure enumeration
  raises `DSPex.Native.Error`. Halting early (`Enum.take/2`), the consumer's death or
  `:timeout` cancels the job; nothing is left in the mailbox. At most one piece waits for
  the consumer: a slow consumer slows the stream.

  LMs that do not stream (DSPy's DummyLM) yield only `{:done, outputs}`.

  ## Examples

      iex> session = DSPex.Native.Session.open!(lm: {:dummy, %{"" => %{"answer" => "Paris"}}})
      iex> :ok = DSPex.Native.Session.create_program(session, "qa", signature: "question -> answer")
      iex> stream = DSPex.Native.Session.stream(session, "qa", %{question: "Capital of France?"})
      iex> Enum.to_list(stream)
      [{:done, %{"answer" => "Paris"}}]
  """
  @spec stream(t(), program_id(), map(), keyword()) :: Enumerable.t()
  defdelegate stream(session, id, inputs, opts \\ []), to: Requests

  @doc """
  The session's program IDs, sorted.

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> :ok = DSPex.Native.Session.create_program(session, "b", signature: "q -> a")
      iex> :ok = DSPex.Native.Session.create_program(session, "a", signature: "q -> a")
      iex> DSPex.Native.Session.list_programs(session)
      {:ok, ["a", "b"]}
  """
  @spec list_programs(t(), keyword()) :: {:ok, [String.t()]} | {:error, Error.t()}
  defdelegate list_programs(session, opts \\ []), to: Requests

  @doc """
  Deletes a program; `:not_found` if the session has none with that ID.

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> :ok = DSPex.Native.Session.create_program(session, "p", signature: "q -> a")
      iex> DSPex.Native.Session.delete_program(session, "p")
      :ok
      iex> {:error, %DSPex.Native.Error{reason: :not_found}} = DSPex.Native.Session.delete_program(session, "p")
  """
  @spec delete_program(t(), program_id(), keyword()) :: :ok | {:error, Error.t()}
  defdelegate delete_program(session, id, opts \\ []), to: Requests

  @doc """
  Runs Python `source` in a namespace that belongs to this session, so that a
  `dspy.Module` subclass defined there can be used as `module: {:custom, "ClassName"}` in
  `create_program/3`. Another session never sees it; closing the session drops it.

  This is full trust: the source is Python, run inside this BEAM with all its rights.
  Load only code you would run yourself. Returns the names of the `dspy.Module` subclasses
  the source defined.

  ## Examples

      iex> session = DSPex.Native.Session.open!(lm: {:dummy, [%{"loud" => "hey"}]})
      iex> source = \"""
      ...> import dspy
      ...> class Shout(dspy.Module):
      ...>     def __init__(self):
      ...>         super().__init__()
      ...>         self.predict = dspy.Predict("text -> loud")
      ...>     def forward(self, text):
      ...>         return dspy.Prediction(loud=self.predict(text=text).loud.upper())
      ...> \"""
      iex> DSPex.Native.Session.load_module(session, "shout", source)
      {:ok, ["Shout"]}
      iex> :ok = DSPex.Native.Session.create_program(session, "s", module: {:custom, "Shout"})
      iex> DSPex.Native.Session.execute(session, "s", %{text: "hi"})
      {:ok, %{"loud" => "HEY"}}
  """
  @spec load_module(t(), String.t(), String.t(), keyword()) ::
          {:ok, [String.t()]} | {:error, Error.t()}
  defdelegate load_module(session, name, source, opts \\ []), to: Requests

  @doc """
  Optimises program `id` against `trainset` (a list of maps holding its inputs and the
  expected outputs) with one of DSPy's optimizers, offline-capable with DummyLM. Options:
  `:optimizer`, `:metric` and its numbers (see `DSPex.Native.Optimizer`), `:as` (store the
  compiled program under this ID instead of replacing `id`), `:timeout`.

  Returns `{:ok, %{id: id, demos: count}}`.

  ## Examples

      iex> session = DSPex.Native.Session.open!(lm: {:dummy, %{"" => %{"answer" => "4"}}})
      iex> :ok = DSPex.Native.Session.create_program(session, "qa", signature: "question -> answer")
      iex> trainset = [%{question: "2+2?", answer: "4"}, %{question: "3+3?", answer: "6"}]
      iex> DSPex.Native.Session.compile(session, "qa", trainset,
      ...>   optimizer: :bootstrap_few_shot, metric: {:exact_match, :answer}, max_labeled_demos: 0)
      {:ok, %{id: "qa", demos: 1}}
  """
  @spec compile(t(), program_id(), [map()], keyword()) ::
          {:ok, %{id: String.t(), demos: non_neg_integer()}} | {:error, Error.t()}
  defdelegate compile(session, id, trainset, opts \\ []), to: Requests

  @doc """
  The program's state as a JSON-encodable map (string keys): its module kind, its
  signature as it was given, and DSPy's state (demos, instructions, field descriptions).
  `import_program/4` recreates it in any session, also in a later BEAM.

  ## Examples

      iex> session = DSPex.Native.Session.open!()
      iex> :ok = DSPex.Native.Session.create_program(session, "qa",
      ...>   signature: %{inputs: [:question], outputs: [:answer], instructions: "Be terse."})
      iex> {:ok, exported} = DSPex.Native.Session.export_program(session, "qa")
      iex> {exported["module"], exported["state"]["signature"]["instructions"]}
      {"predict", "Be terse."}
  """
  @spec export_program(t(), program_id(), keyword()) :: {:ok, map()} | {:error, Error.t()}
  defdelegate export_program(session, id, opts \\ []), to: Requests

  @doc """
  Recreates a program from `export_program/3`'s map under `id` (a custom module's class
  must be loaded in this session first). Options: `:replace`, `:timeout`.

  An export is treated as untrusted data: the whole map is checked against the format
  `export_program/3` writes (known keys only, demos holding only the program's fields as
  plain values, at most 1,000 demos and 10 million characters of demo values). LM settings
  (`"lm"`), unknown keys and bad types are refused with `:invalid_argument` naming the key,
  and nothing is installed.

  ## Examples

      iex> a = DSPex.Native.Session.open!()
      iex> :ok = DSPex.Native.Session.create_program(a, "qa", signature: "question -> answer")
      iex> {:ok, exported} = DSPex.Native.Session.export_program(a, "qa")
      iex> b = DSPex.Native.Session.open!(lm: {:dummy, [%{"answer" => "copied"}]})
      iex> DSPex.Native.Session.import_program(b, "qa", exported)
      :ok
      iex> DSPex.Native.Session.execute(b, "qa", %{question: "?"})
      {:ok, %{"answer" => "copied"}}
  """
  @spec import_program(t(), program_id(), map(), keyword()) :: :ok | {:error, Error.t()}
  defdelegate import_program(session, id, exported, opts \\ []), to: Requests

  @doc """
  Makes the `dspy.Module` that `ref` holds program `id` of the session, so `execute/4`,
  `compile/4`, `export_program/3` and `history/3` work on it. Options: `:replace`,
  `:timeout`.

  ## Examples

      iex> session = DSPex.Native.Session.open!(lm: {:dummy, %{"" => %{"reasoning" => "r", "answer" => "4"}}})
      iex> cot = DSPex.Native.Py.call!(session, "dspy.ChainOfThought", ["question -> answer"])
      iex> DSPex.Native.Session.put_program(session, "cot", cot)
      :ok
      iex> DSPex.Native.Session.execute(session, "cot", %{question: "2 + 2?"})
      {:ok, %{"reasoning" => "r", "answer" => "4"}}
  """
  @spec put_program(t(), program_id(), DSPex.Native.Ref.t(), keyword()) ::
          :ok | {:error, Error.t()}
  defdelegate put_program(session, id, ref, opts \\ []), to: Requests

  @doc """
  The session's last `n` LM calls, oldest first: each a map with `:model`, `:messages`
  (what the LM was asked), `:outputs`, `:usage` (token counts), `:cost` and `:timestamp`.
  Each session sees only its own calls; a session keeps its last `history_size` (100).

  ## Examples

      iex> session = DSPex.Native.Session.open!(lm: {:dummy, [%{"answer" => "4"}]})
      iex> :ok = DSPex.Native.Session.create_program(session, "math", signature: "question -> answer")
      iex> {:ok, _} = DSPex.Native.Session.execute(session, "math", %{question: "2 + 2?"})
      iex> {:ok, [call]} = DSPex.Native.Session.history(session, 1)
      iex> call.model
      "dummy"
      iex> Enum.any?(call.messages, &(&1["content"] =~ "2 + 2?"))
      true
  """
  @spec history(t(), non_neg_integer(), keyword()) :: {:ok, [map()]} | {:error, Error.t()}
  defdelegate history(session, n \\ 10, opts \\ []), to: Requests

  @doc """
  What the session holds: `:id`, `:name`, `:programs` (a count), `:executions` (successful
  ones), `:failures`, `:lm` (the model's name only, `"dummy"` for DummyLM, or `nil`) and
  `:usage`, token totals per model (`%{"openai/gpt-4o-mini" => %{"prompt_tokens" => ...}}`).

  ## Examples

      iex> session = DSPex.Native.Session.open!(name: "stats", lm: {:dummy, []})
      iex> {:ok, info} = DSPex.Native.Session.info(session)
      iex> {info.name, info.programs, info.executions, info.lm}
      {"stats", 0, 0, "dummy"}
  """
  @spec info(t(), keyword()) :: {:ok, map()} | {:error, Error.t()}
  defdelegate info(session, opts \\ []), to: Requests

  defp bang({:ok, value}), do: value
  defp bang(:ok), do: :ok
  defp bang({:error, error}), do: raise(error)

  defimpl Inspect do
    # Reads only the struct: inspecting never calls into Python or the NIF.
    def inspect(%{id: id, name: name, node: node}, _opts) do
      name = if name in [nil, ""], do: "", else: " " <> Kernel.inspect(name)
      where = if node, do: " on #{node}", else: ""
      "#DSPex.Native.Session<#{id}#{name}#{where}>"
    end
  end
end
