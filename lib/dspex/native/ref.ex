defmodule DSPex.Native.Ref do
  @moduledoc """
  A Python object that a session holds for Elixir: a `dspy.Module`, an optimizer, an
  `Evaluate`, anything `DSPex.Native.Py` returns that has no Elixir form.

  A ref belongs to one session: it can be passed to `DSPex.Native.Py` functions and
  `DSPex.Native.Session.put_program/4` of that session only (another session's ref is
  `:invalid_argument`), and it keeps its session alive. Its Python object is freed when
  the BEAM garbage-collects the last copy of the ref, or when its session closes (after
  which every use answers `:closed`). `inspect/1` shows the Python type, never the object.
  """

  alias DSPex.Native.{Error, NIF, Session, Tool}

  @enforce_keys [:session, :id, :type]
  defstruct [:session, :id, :type, :handle]

  @typedoc "A reference to a Python object of one session."
  @type t :: %__MODULE__{
          session: Session.t(),
          id: pos_integer(),
          type: String.t(),
          handle: reference() | nil
        }

  @doc false
  # Does nothing with `term`, after the request that named its refs: until this call the
  # caller still references them, so none is collected (and released) while in use.
  @spec keep_alive(term()) :: :ok
  def keep_alive(_term), do: :ok

  @doc false
  # How `ref` crosses to Python in a call on `session`: `{:"$dspex_ref", id}`, or an error
  # when it belongs to another session.
  def marker(%Session{id: sid, node: node}, %__MODULE__{
        session: %Session{id: sid, node: node},
        id: id
      }),
      do: {:ok, {:"$dspex_ref", id}}

  def marker(%Session{} = session, %__MODULE__{} = ref) do
    {:error,
     Error.new(
       :invalid_argument,
       "#{Kernel.inspect(ref)} belongs to session #{ref.session.id}, not session #{session.id}"
     )}
  end

  @doc false
  # Arguments for Python: refs as markers (of `session` only), functions as handles that
  # Python calls back (a function gets as many of Python's arguments as its arity takes).
  def encode_args(session, args) do
    {:ok, Enum.map(args, &encode(session, &1))}
  catch
    {:invalid, error} -> {:error, error}
  end

  defp encode(session, %__MODULE__{} = ref) do
    case marker(session, ref) do
      {:ok, marker} -> marker
      {:error, error} -> throw({:invalid, error})
    end
  end

  defp encode(session, fun) when is_function(fun) do
    {:arity, arity} = Function.info(fun, :arity)

    Tool.fun_handle(fn args when is_list(args) ->
      args = wrap(session, args) ++ List.duplicate(nil, arity)
      apply(fun, Enum.take(args, arity))
    end)
  end

  defp encode(session, list) when is_list(list), do: Enum.map(list, &encode(session, &1))

  defp encode(session, tuple) when is_tuple(tuple),
    do: tuple |> Tuple.to_list() |> Enum.map(&encode(session, &1)) |> List.to_tuple()

  defp encode(session, map) when is_map(map) and not is_struct(map),
    do: Map.new(map, fn {k, v} -> {k, encode(session, v)} end)

  defp encode(_session, other), do: other

  @doc false
  # Every ref marker Python returned in `term` (`{:"$dspex_ref", id, type}`) as a %Ref{},
  # each with a handle whose collection releases the object.
  def wrap(%Session{} = session, term) do
    case term do
      {:"$dspex_ref", id, type} when is_integer(id) and is_binary(type) ->
        %__MODULE__{session: session, id: id, type: type, handle: handle(session, id)}

      list when is_list(list) ->
        Enum.map(list, &wrap(session, &1))

      tuple when is_tuple(tuple) ->
        tuple |> Tuple.to_list() |> Enum.map(&wrap(session, &1)) |> List.to_tuple()

      map when is_map(map) and not is_struct(map) ->
        Map.new(map, fn {k, v} -> {k, wrap(session, v)} end)

      other ->
        other
    end
  end

  # Remote sessions' refs live on the session's node: their handle is made there.
  defp handle(%Session{node: nil, resource: resource}, id), do: NIF.ref_handle(resource, id)
  defp handle(_session, _id), do: nil

  defimpl Inspect do
    def inspect(%{id: id, type: type, session: session}, _opts),
      do: "#DSPex.Native.Ref<#{type} #{id} of session #{session.id}>"
  end
end
