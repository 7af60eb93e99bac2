defmodule DSPex.Native.Requests do
  @moduledoc false
  # What each `DSPex.Native.Session` function does: checks the shape of its arguments,
  # builds the request the Python side gets, and runs it here, or on the session's node
  # when the session lives on another one (the same function, run there by `Remote`).

  alias DSPex.Native.{
    Args,
    Error,
    Job,
    LM,
    NIF,
    Optimizer,
    Ref,
    Remote,
    Session,
    Signature,
    Streaming,
    Tool
  }

  import DSPex.Native.Args, only: [invalid: 1]

  @execute_timeout 30_000
  @compile_timeout 300_000
  @default_timeout 15_000

  def open(opts) do
    allowed = [:name, :lm, :adapter, :owner, :timeout, :node, :placement]

    with {:ok, opts} <- Args.options(opts, allowed),
         {:ok, node} <- Remote.placement(opts) do
      opts = Keyword.drop(opts, [:node, :placement])
      if node == node(), do: open_here(opts), else: Remote.open(node, opts, @default_timeout)
    end
  end

  def reset(session, opts) do
    route(session, {:reset, [opts]}, opts, @default_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:timeout]) do
        ok(request(session, "reset", %{}, opts, @default_timeout))
      end
    end)
  end

  def configure(session, opts) do
    route(session, {:configure, [opts]}, opts, @default_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:lm, :adapter, :timeout]),
           {:ok, settings} <- LM.settings(opts) do
        ok(request(session, "configure", settings, opts, @default_timeout))
      end
    end)
  end

  def create_program(session, id, opts) do
    route(session, {:create_program, [id, opts]}, opts, @default_timeout, fn ->
      allowed = [:signature, :module, :adapter, :replace, :timeout] ++ Tool.react_options()

      with {:ok, opts} <- Args.options(opts, allowed),
           {:ok, id} <- Args.program_id(id),
           {:ok, module} <- Signature.module_kind(Keyword.get(opts, :module, :predict)),
           {:ok, signature} <- Signature.program_signature(Keyword.get(opts, :signature), module),
           {:ok, replace} <- Args.boolean(Keyword.get(opts, :replace, false), :replace),
           {:ok, react} <- Tool.react_args(module, opts) do
        args = %{"id" => id, "signature" => signature, "module" => module, "replace" => replace}
        args = args |> Map.merge(react) |> Map.put("adapter", Keyword.get(opts, :adapter))
        ok(request(session, "create_program", args, opts, @default_timeout))
      end
    end)
  end

  def execute(session, id, inputs, opts) do
    route(session, {:execute, [id, inputs, opts]}, opts, @execute_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:timeout]),
           {:ok, id} <- Args.program_id(id),
           :ok <- Args.inputs(inputs),
           {:ok, inputs} <- Tool.inputs(Args.media(inputs)) do
        args = %{"id" => id, "inputs" => inputs}
        request(session, "execute", args, opts, @execute_timeout)
      end
    end)
  end

  # A stream raises its error when enumerated, as the job's own errors do.
  def stream(session, id, inputs, opts) do
    case stream_here(session, id, inputs, opts) do
      {:ok, stream} -> stream
      {:error, error} -> Stream.map([error], &raise/1)
    end
  end

  defp stream_here(%Session{node: node, resource: resource} = session, id, inputs, opts) do
    # The stream keeps the handle: while it runs, the session cannot be collected (and closed).
    where =
      if node,
        do: {:remote, node, elem(NIF.remote_handle_info(resource), 1), resource},
        else: {:local, session}

    with {:ok, opts} <- Args.options(opts, [:timeout, :fields, :status]),
         {:ok, id} <- Args.program_id(id),
         :ok <- Args.inputs(inputs),
         {:ok, inputs} <- Tool.inputs(Args.media(inputs)),
         {:ok, timeout} <- Args.timeout(opts, @execute_timeout),
         {:ok, status} <- Args.boolean(Keyword.get(opts, :status, false), :status) do
      fields =
        opts |> Keyword.get(:fields) |> then(&(&1 && Enum.map(&1, fn f -> to_string(f) end)))

      args = %{"id" => id, "inputs" => inputs, "fields" => fields, "status" => status}
      {:ok, Streaming.stream(where, args, timeout)}
    end
  end

  defp stream_here(other, _id, _inputs, _opts),
    do: {:error, invalid("expected a %DSPex.Native.Session{}, got #{inspect(other)}")}

  def list_programs(session, opts) do
    route(session, {:list_programs, [opts]}, opts, @default_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:timeout]) do
        request(session, "list_programs", %{}, opts, @default_timeout)
      end
    end)
  end

  def delete_program(session, id, opts) do
    route(session, {:delete_program, [id, opts]}, opts, @default_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:timeout]),
           {:ok, id} <- Args.program_id(id) do
        ok(request(session, "delete_program", %{"id" => id}, opts, @default_timeout))
      end
    end)
  end

  def load_module(session, name, source, opts) do
    route(session, {:load_module, [name, source, opts]}, opts, @default_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:timeout]),
           :ok <- Args.text(name, "module name"),
           :ok <- Args.text(source, "module source") do
        args = %{"name" => name, "source" => source}
        request(session, "load_module", args, opts, @default_timeout)
      end
    end)
  end

  def compile(session, id, trainset, opts) do
    route(session, {:compile, [id, trainset, opts]}, opts, @compile_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:as, :timeout | Optimizer.options()]),
           {:ok, id} <- Args.program_id(id),
           {:ok, as} <- if(opts[:as], do: Args.program_id(opts[:as]), else: {:ok, nil}),
           {:ok, args} <- Optimizer.args(trainset, opts),
           args = Map.merge(args, %{"id" => id, "as" => as}),
           {:ok, result} <- request(session, "compile", args, opts, @compile_timeout) do
        {:ok, %{id: result["id"], demos: result["demos"]}}
      end
    end)
  end

  def export_program(session, id, opts) do
    route(session, {:export_program, [id, opts]}, opts, @default_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:timeout]),
           {:ok, id} <- Args.program_id(id) do
        request(session, "export_program", %{"id" => id}, opts, @default_timeout)
      end
    end)
  end

  def import_program(session, id, exported, opts) do
    route(session, {:import_program, [id, exported, opts]}, opts, @default_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:replace, :timeout]),
           {:ok, id} <- Args.program_id(id),
           {:ok, replace} <- Args.boolean(Keyword.get(opts, :replace, false), :replace),
           true <-
             is_map(exported) || {:error, invalid("expected the map export_program/3 returned")} do
        args = %{"id" => id, "exported" => exported, "replace" => replace}
        ok(request(session, "import_program", args, opts, @default_timeout))
      end
    end)
  end

  def history(session, n, opts) do
    route(session, {:history, [n, opts]}, opts, @default_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:timeout]),
           {:ok, n} <- Args.count(n, "n"),
           {:ok, entries} <- request(session, "history", %{"n" => n}, opts, @default_timeout) do
        {:ok, Enum.map(entries, fn e -> Map.new(e, fn {k, v} -> {String.to_atom(k), v} end) end)}
      end
    end)
  end

  def info(session, opts) do
    route(session, {:info, [opts]}, opts, @default_timeout, fn ->
      with {:ok, opts} <- Args.options(opts, [:timeout]),
           {:ok, info} <- request(session, "info", %{}, opts, @default_timeout) do
        # The keys come from the bridge's fixed set, never from user data.
        {:ok, Map.new(info, fn {k, v} -> {String.to_atom(k), v} end)}
      end
    end)
  end

  def close(%Session{node: node} = session) when node != nil do
    # Idempotent: a session whose node is gone is closed already.
    Remote.call(session, :close, [], @default_timeout)
    :ok
  end

  def close(%Session{resource: resource}), do: NIF.session_close(resource)

  @doc false
  # Opens a session on this node (also what `Remote` runs on the session's node).
  def open_here(opts) do
    with {:ok, name} <- Args.name(Keyword.get(opts, :name)),
         {:ok, lm} <- LM.spec(Keyword.get(opts, :lm)),
         {:ok, owner} <- Args.owner(Keyword.get(opts, :owner)),
         {:ok, timeout} <- Args.timeout(opts, @default_timeout),
         {:ok, resource} <- Job.run({:session_open, [name, lm, owner]}, timeout) do
      {id, name} = NIF.session_meta(resource)
      session = %Session{resource: resource, id: id, name: if(name == "", do: nil, else: name)}
      with_adapter(session, opts)
    end
  end

  # `adapter:` at open is a configure right after: a session without one opens in one job.
  defp with_adapter(session, opts) do
    case Keyword.fetch(opts, :adapter) do
      :error ->
        {:ok, session}

      {:ok, adapter} ->
        timeout = Keyword.get(opts, :timeout, @default_timeout)

        case configure(session, adapter: adapter, timeout: timeout) do
          :ok -> {:ok, session}
          {:error, _} = error -> Session.close(session) && error
        end
    end
  end

  # -- Python references (DSPex.Native.Py) ---------------------------------------------------

  @py_options [:timeout, :as, :fun_timeout]

  def put_program(session, id, ref, opts) do
    route(session, {:put_program, [id, ref, opts]}, opts, @default_timeout, fn ->
      put_program_here(session, id, ref, opts)
    end)
  end

  defp put_program_here(session, id, ref, opts) do
    with {:ok, opts} <- Args.options(opts, [:replace, :timeout]),
         {:ok, id} <- Args.program_id(id),
         {:ok, replace} <- Args.boolean(Keyword.get(opts, :replace, false), :replace),
         {:ok, marker} <- Ref.marker(session, ref) do
      args = %{"id" => id, "ref" => elem(marker, 1), "replace" => replace}
      result = request(session, "put_program", args, opts, @default_timeout)
      Ref.keep_alive(ref)
      ok(result)
    end
  end

  def py_call(session, target, args, kwargs, opts) do
    route(session, {:py_call, [target, args, kwargs, opts]}, opts, @execute_timeout, fn ->
      with {:ok, marker} <- py_target(session, target) do
        py_request(session, "py_call", %{"target" => marker}, {args, kwargs, target}, opts)
      end
    end)
  end

  def py_method(%Ref{session: %Session{node: node} = session} = ref, name, args, kwargs, opts)
      when node != nil,
      do:
        Remote.call(
          session,
          :py_method,
          [ref, name, args, kwargs, opts],
          Args.remote_timeout(opts, @execute_timeout)
        )

  def py_method(ref, name, args, kwargs, opts) do
    with {:ok, session, number} <- py_ref(ref),
         :ok <- Args.text(name, "method name") do
      args_map = %{"ref" => number, "name" => name}
      py_request(session, "py_method", args_map, {args, kwargs, ref}, opts)
    end
  end

  def py_attr(%Ref{session: %Session{node: node} = session} = ref, name, opts) when node != nil,
    do:
      Remote.call(
        session,
        :py_attr,
        [ref, name, opts],
        Args.remote_timeout(opts, @execute_timeout)
      )

  def py_attr(ref, name, opts) do
    with {:ok, session, number} <- py_ref(ref),
         :ok <- Args.text(name, "attribute name") do
      py_request(session, "py_attr", %{"ref" => number, "name" => name}, {[], [], ref}, opts)
    end
  end

  def py_set_attr(%Ref{session: %Session{node: node} = session} = ref, name, value, opts)
      when node != nil,
      do:
        Remote.call(
          session,
          :py_set_attr,
          [ref, name, value, opts],
          Args.remote_timeout(opts, @execute_timeout)
        )

  def py_set_attr(ref, name, value, opts) do
    with {:ok, session, number} <- py_ref(ref),
         :ok <- Args.text(name, "attribute name"),
         {:ok, [encoded]} <- Ref.encode_args(session, [value]) do
      args = %{"ref" => number, "name" => name, "value" => encoded}
      ok(py_request(session, "py_set_attr", args, {[], [], {ref, value}}, opts))
    end
  end

  # `keep` (the refs the call names) stays referenced until Python has answered: a ref whose
  # last copy the caller no longer needs could otherwise be collected, and its object
  # released, before the job that uses it starts.
  defp py_request(session, op, args, {given_args, given_kwargs, _target} = given, opts) do
    with {:ok, opts} <- Args.options(opts, @py_options),
         {:ok, as_ref} <- as_ref(Keyword.get(opts, :as)),
         {:ok, fun_timeout} <- Args.integers(Keyword.take(opts, [:fun_timeout]), 1),
         {:ok, positional} <- py_positional(session, given_args),
         {:ok, keywords} <- py_keywords(session, given_kwargs),
         args =
           Map.merge(args, %{"args" => positional, "kwargs" => keywords, "as_ref" => as_ref}),
         result = request(session, op, Map.merge(args, fun_timeout), opts, @execute_timeout),
         :ok <- Ref.keep_alive(given),
         {:ok, result} <- result do
      {:ok, Ref.wrap(session, result)}
    end
  end

  defp py_target(session, %Ref{} = ref), do: Ref.marker(session, ref)
  defp py_target(_session, path) when is_binary(path), do: {:ok, path}

  defp py_target(_session, other),
    do:
      {:error,
       invalid("a target is a dotted path or a %DSPex.Native.Ref{}, got #{inspect(other)}")}

  defp py_ref(%Ref{session: %Session{node: :released}}),
    do: {:error, Error.new(:closed, "the object this ref named was released")}

  defp py_ref(%Ref{session: session} = ref) do
    with {:ok, {_, number}} <- Ref.marker(session, ref), do: {:ok, session, number}
  end

  defp py_ref(other),
    do: {:error, invalid("expected a %DSPex.Native.Ref{}, got #{inspect(other)}")}

  defp py_positional(session, args) when is_list(args), do: Ref.encode_args(session, args)

  defp py_positional(_session, other),
    do: {:error, invalid("args must be a list, got #{inspect(other)}")}

  defp py_keywords(session, kwargs) when is_list(kwargs) or is_map(kwargs) do
    if is_map(kwargs) or Keyword.keyword?(kwargs) do
      with {:ok, values} <- Ref.encode_args(session, Enum.map(kwargs, &elem(&1, 1))) do
        {:ok, Map.new(Enum.zip(Enum.map(kwargs, &elem(&1, 0)), values))}
      end
    else
      {:error, invalid("kwargs must be a keyword list or a map")}
    end
  end

  defp py_keywords(_session, other),
    do: {:error, invalid("kwargs must be a keyword list or a map, got #{inspect(other)}")}

  defp as_ref(nil), do: {:ok, false}
  defp as_ref(:ref), do: {:ok, true}
  defp as_ref(other), do: {:error, invalid("as must be :ref, got #{inspect(other)}")}

  # -- plumbing ----------------------------------------------------------------------------

  # A session on another node: the same function runs there (see DSPex.Native.Remote).
  defp route(%Session{node: node} = session, {fun, args}, opts, default, _local)
       when node != nil,
       do: Remote.call(session, fun, args, Args.remote_timeout(opts, default))

  defp route(_session, _call, _opts, _default, local), do: local.()

  defp request(%Session{resource: resource, id: id, name: name}, op, args, opts, default) do
    with {:ok, timeout} <- Args.timeout(opts, default) do
      Job.run({:session_call, [resource, op, args]}, timeout, session: id, session_name: name)
    end
  end

  defp request(other, _op, _args, _opts, _default) do
    {:error, invalid("expected a %DSPex.Native.Session{}, got #{inspect(other)}")}
  end

  defp ok({:ok, nil}), do: :ok
  defp ok({:error, _} = error), do: error
end
