"""Attaching a client to a running container's stdio, through the runtime's Attachment."""

from __future__ import annotations

import threading

from podnet.streaming.remotecommand import SUCCESS, CommandStreams, Reader, Status, internal_error
from podnet.streaming.runtime import Attachment, StreamError


class AttachJob:
    def __init__(self, attachment: Attachment) -> None:
        self.attachment = attachment

    def run(self, streams: CommandStreams) -> Status:
        if streams.stdin is not None:
            threading.Thread(target=self._copy_stdin, args=(streams.stdin,), name="attach-input",
                             daemon=True).start()
        outputs = {1: streams.stdout, 2: streams.stdout if streams.tty else streams.stderr}
        try:
            while (output := self.attachment.read()) is not None:
                writer = outputs.get(output[0])
                if writer is not None:
                    writer.write(output[1])
        except StreamError as err:
            return internal_error(f"error attaching to container: {err.message}")
        except ConnectionError:
            pass  # the client is gone
        finally:
            self.attachment.close()
        return SUCCESS

    def cancel(self) -> None:
        self.attachment.close()

    def _copy_stdin(self, reader: Reader) -> None:
        try:
            while data := reader.read():
                self.attachment.write_stdin(data)
            self.attachment.close_stdin()
        except (StreamError, OSError):
            pass  # the container's stdin is gone
