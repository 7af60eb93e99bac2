defmodule DSPex.Native.LM do
  @moduledoc """
  The LM a session talks to, and how.

  Elixir checks the shape of these terms; the Python side builds the `dspy.LM` (and owns
  what its options mean).

  ## LM specs (`lm:` on `open/1` and `configure/2`)

  * `nil`: no LM (executing gives `:no_lm`);
  * `"openai/gpt-4o-mini"`: a model string for `dspy.LM` (provider keys come from the
    environment as usual);
  * `{"openai/gpt-4o-mini", api_key: ..., api_base: ..., temperature: ...}`: options
    passed on to `dspy.LM`, except `cache:` (below);
  * `{:dummy, answers}`: DSPy's `DummyLM`, for tests and offline work. A list of output maps
    is consumed one per call, and a call after the last is an error that says so; a map from
    a substring of the prompt to an output map answers whichever prompt contains the
    substring, the longest substring first (`""` matches every prompt, so it comes last);
    a prompt that no key matches is an error.

  API keys stay in Python: they never appear in `inspect/1`, `info/1`, errors or logs.

  `cache:` says where a real LM's answers are cached. Every cache key includes the LM's
  endpoint (`api_base`) and a hash of its credentials, so different servers or keys never
  share an answer. Nothing is written to disk unless you name a directory.

  * `true` or `:session` (the default): in this session only, in memory (its last 100
    answers), freed with the session;
  * `:shared`: in one in-memory cache shared by every session that also says `:shared`;
  * `{:disk, directory}`: on disk in `directory` (shared by the sessions that name it);
  * `false`: not cached.


  ## Adapters

  `adapter:` on `DSPex.Native.Session.open/1`, `configure/2` (for every program of the
  session) and `create_program/3` (for one program): `:chat` (DSPy's default), `:json`,
  `:xml` or `:two_step` (a second call to the session's LM extracts the fields); `nil`
  goes back to the default.
  """

  import DSPex.Native.Args, only: [invalid: 1]

  @doc false
  # The settings `configure/2` changes: only those given. An adapter's name is Python's to
  # check (`:chat`, `:json`, `:xml`, `:two_step`, or nil for DSPy's default).
  def settings(opts) do
    with {:ok, settings} <- lm_setting(opts) do
      case Keyword.fetch(opts, :adapter) do
        {:ok, adapter} when is_atom(adapter) -> {:ok, Map.put(settings, "adapter", adapter)}
        {:ok, other} -> {:error, invalid("adapter must be an atom, got #{inspect(other)}")}
        :error -> {:ok, settings}
      end
    end
  end

  defp lm_setting(opts) do
    case Keyword.fetch(opts, :lm) do
      {:ok, spec} -> with {:ok, lm} <- spec(spec), do: {:ok, %{"lm" => lm}}
      :error -> {:ok, %{}}
    end
  end

  @doc false
  # Never inspect an LM spec in a message: it may hold an API key.
  def spec(nil), do: {:ok, nil}
  def spec(model) when is_binary(model), do: spec({model, []})

  def spec({:dummy, answers}) when is_list(answers) or is_map(answers),
    do: {:ok, %{"kind" => "dummy", "answers" => answers}}

  def spec({model, opts}) when is_binary(model) and is_list(opts) do
    if Keyword.keyword?(opts) do
      {:ok,
       %{
         "kind" => "lm",
         "model" => model,
         "kwargs" => Map.new(opts, fn {k, v} -> {Atom.to_string(k), v} end)
       }}
    else
      {:error, invalid("lm options must be a keyword list (passed on to dspy.LM)")}
    end
  end

  def spec(_other) do
    {:error,
     invalid(
       "lm must be nil, a model string, {model, keyword} or {:dummy, answers} (a list or map of output maps)"
     )}
  end
end
