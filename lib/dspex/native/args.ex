defmodule DSPex.Native.Args do
  @moduledoc false
  # The shapes of the plain Elixir terms the API takes (options, timeouts, names, program
  # IDs, inputs): checked here, once, with errors that name what was wrong. What those
  # terms mean to DSPy is the Python side's to check.

  alias DSPex.Native.Error

  def invalid(message), do: Error.new(:invalid_argument, message)

  def options(opts, allowed) when is_list(opts) do
    if Keyword.keyword?(opts) do
      case Keyword.keys(opts) -- allowed do
        [] ->
          {:ok, opts}

        unknown ->
          {:error, invalid("unknown options #{inspect(unknown)}; allowed: #{inspect(allowed)}")}
      end
    else
      {:error, invalid("options must be a keyword list, got #{inspect(opts)}")}
    end
  end

  def options(opts, _allowed),
    do: {:error, invalid("options must be a keyword list, got #{inspect(opts)}")}

  def timeout(opts, default) do
    case Keyword.get(opts, :timeout, default) do
      :infinity ->
        {:ok, :infinity}

      ms when is_integer(ms) and ms >= 0 ->
        {:ok, ms}

      other ->
        {:error,
         invalid("timeout must be a non-negative integer or :infinity, got #{inspect(other)}")}
    end
  end

  # The timeout a remote call waits for: the caller's own, or the default (the far side
  # checks its shape again).
  def remote_timeout(opts, default) do
    timeout = if is_list(opts), do: Keyword.get(opts, :timeout, default), else: default
    if is_integer(timeout) or timeout == :infinity, do: timeout, else: default
  end

  def count(n, _what) when is_integer(n) and n >= 0, do: {:ok, n}

  def count(n, what),
    do: {:error, invalid("#{what} must be a non-negative integer, got #{inspect(n)}")}

  def owner(nil), do: {:ok, nil}
  def owner(pid) when is_pid(pid) and node(pid) == node(), do: {:ok, pid}
  def owner(other), do: {:error, invalid("owner must be a local pid, got #{inspect(other)}")}

  def name(nil), do: {:ok, nil}

  def name(name) when is_binary(name) do
    if String.valid?(name) and byte_size(name) <= 256,
      do: {:ok, name},
      else: {:error, invalid("name must be valid UTF-8 of at most 256 bytes")}
  end

  def name(other), do: {:error, invalid("name must be a string, got #{inspect(other)}")}

  @max_id_bytes 256

  def program_id(id) when is_atom(id) and id not in [nil, true, false],
    do: program_id(Atom.to_string(id))

  def program_id(id) when is_binary(id) do
    cond do
      id == "" ->
        {:error, invalid("program ID must not be empty")}

      not String.valid?(id) ->
        {:error, invalid("program ID #{inspect(id)} is not valid UTF-8")}

      byte_size(id) > @max_id_bytes ->
        {:error, invalid("program ID is longer than #{@max_id_bytes} bytes")}

      true ->
        {:ok, id}
    end
  end

  def program_id(other),
    do: {:error, invalid("program ID must be a string or an atom, got #{inspect(other)}")}

  def inputs(inputs) when is_map(inputs) and not is_struct(inputs) do
    case Enum.reject(Map.keys(inputs), &(is_binary(&1) or is_atom(&1))) do
      [] -> :ok
      bad -> {:error, invalid("input names must be atoms or strings, got #{inspect(bad)}")}
    end
  end

  def inputs(other), do: {:error, invalid("inputs must be a map, got #{inspect(other)}")}

  # Integer options of at least `min`, as a string-keyed map for Python.
  def integers(opts, min) do
    Enum.reduce_while(opts, {:ok, %{}}, fn
      {key, n}, {:ok, acc} when is_integer(n) and n >= min ->
        {:cont, {:ok, Map.put(acc, Atom.to_string(key), n)}}

      {key, n}, _ ->
        {:halt,
         {:error, invalid("#{key} must be an integer of at least #{min}, got #{inspect(n)}")}}
    end)
  end

  def text(value, what) do
    if is_binary(value) and String.valid?(value),
      do: :ok,
      else: {:error, invalid("#{what} must be a UTF-8 string")}
  end

  def boolean(value, _key) when is_boolean(value), do: {:ok, value}

  def boolean(value, key),
    do: {:error, invalid("#{key} must be a boolean, got #{inspect(value)}")}

  # `{:image, binary, mime}` and `{:audio, binary, mime}` input values (or lists of them)
  # as the data URLs the Python side builds dspy.Image and dspy.Audio from.
  def media(inputs) when is_map(inputs), do: Map.new(inputs, fn {k, v} -> {k, media_value(v)} end)

  defp media_value({kind, data, mime}) when kind in [:image, :audio] and is_binary(data),
    do: "data:#{mime};base64," <> Base.encode64(data)

  defp media_value([{kind, _, _} | _] = list) when kind in [:image, :audio] do
    if proper_list?(list), do: Enum.map(list, &media_value/1), else: list
  end

  defp media_value(value), do: value

  # An improper list is refused later, by the NIF, naming where it is.
  def proper_list?([]), do: true
  def proper_list?([_ | tail]), do: proper_list?(tail)
  def proper_list?(_), do: false
end
