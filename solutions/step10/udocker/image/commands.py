"""`udocker pull IMAGE`, `udocker images`, `udocker rmi [-f] IMAGE...`.

Each command returns its exit status: 0, or 125 with one line
`udocker: <problem>` on stderr. A Ctrl-C ends a pull with 130 and leaves
nothing half-stored. As docker's, rmi exits 1 when it refuses to remove an
image that a running container uses.
"""
import sys

from udocker.errors import EXIT_RUNTIME_ERROR, UdockerError

EXIT_CONFLICT = 1  # docker rmi's status when an image is in use

# The commands import what they use when they run: `udocker run DIRECTORY` builds
# this parser too, and should not pay for the image modules.


def add_arguments(subparsers):
    """Add the pull, images and rmi subcommands to SUBPARSERS (argparse's add_subparsers())."""
    pull = subparsers.add_parser(
        "pull", help="download an image from a registry",
        description="Download IMAGE (NAME[:TAG] or NAME@sha256:DIGEST, e.g. busybox, "
                    "127.0.0.1:5000/workshop/busybox:latest) into the image store.")
    pull.add_argument("image", metavar="IMAGE")
    pull.set_defaults(handler=pull_command)
    images = subparsers.add_parser("images", help="list the stored images",
                                   description="List the stored images: reference, digest, size.")
    images.set_defaults(handler=images_command)
    rmi = subparsers.add_parser("rmi", help="remove images",
                                description="Remove IMAGEs, and the layers no other image and no "
                                            "running container uses.")
    rmi.add_argument("-f", "--force", action="store_true",
                     help="untag an image even if a running container uses it (its layers stay "
                          "until the container ends)")
    rmi.add_argument("image", metavar="IMAGE", nargs="+")
    rmi.set_defaults(handler=rmi_command)


def _reported(command):
    """Run COMMAND(); turn every failure into one line on stderr and an exit status."""
    try:
        return command()
    except UdockerError as error:
        print(f"udocker: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("udocker: interrupted; nothing partial was kept, run it again to finish",
              file=sys.stderr)
        return 130
    except OSError as error:
        print(f"udocker: {error}", file=sys.stderr)
        return EXIT_RUNTIME_ERROR
    except Exception as error:  # a bug (or a TODO): still one line, with what it was
        print(f"udocker: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_RUNTIME_ERROR


def pull_command(args):
    def pull():
        from udocker.image.reference import parse_reference
        from udocker.image.store import Store

        reference = parse_reference(args.image)
        from udocker.image.progress import Progress
        from udocker.image.pull import pull_image

        pull_image(reference, Store(), Progress())
        return 0

    return _reported(pull)


def images_command(args):
    def images():
        from udocker.image.progress import human
        from udocker.image.reference import parse_reference
        from udocker.image.store import Store

        records = Store().images()
        rows = [("REFERENCE", "DIGEST", "SIZE")]
        rows += [(parse_reference(r["reference"]).familiar(), r["digest"], human(r["size"]))
                 for r in records]
        width = [max(len(row[i]) for row in rows) for i in range(2)]
        for reference, digest, size in rows:
            print(f"{reference:<{width[0]}}  {digest:<{width[1]}}  {size}")
        return 0

    return _reported(images)


def rmi_command(args):
    def rmi():
        from udocker.image.reference import parse_reference
        from udocker.image.store import Store

        store = Store()
        names = args.image if isinstance(args.image, list) else [args.image]
        status = 0
        for name in names:
            try:
                reference = parse_reference(name)
                if not getattr(args, "force", False):
                    refuse_if_in_use(store, reference, name)
                store.remove_image(reference)
                print(f"Untagged: {reference.familiar()}")
            except UdockerError as error:
                print(f"udocker: {error}", file=sys.stderr)
                status = error.exit_code
        removed = store.collect_garbage()
        if removed:
            print(f"Deleted: {removed} blobs and layers no image uses")
        return status

    return _reported(rmi)


def refuse_if_in_use(store, reference, name):
    """Docker's rule: the last reference to an image that a running container uses needs -f."""
    record = store.load_image(reference)
    if record is None:
        return  # remove_image says it is not there
    others = [r for r in store.images() if r["config"] == record["config"] and r["reference"] != record["reference"]]
    users = store.users(record)
    if users and not others:
        image_id = record["config"].split(":", 1)[1][:12]
        raise UdockerError(
            f'conflict: unable to remove repository reference "{name}" (must force) - container '
            f"{users[0]['container']} is using its referenced image {image_id}; stop the container "
            "first, or untag the image with rmi -f (its layers stay until the container ends)",
            EXIT_CONFLICT)
