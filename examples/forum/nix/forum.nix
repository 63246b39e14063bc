# The web forum's systems, as plain derivations: no nixpkgs is needed, so the
# example runs anywhere nix runs. Each system sits at the attribute path real
# NixOS uses (nixosConfigurations.NAME.config.system.build.toplevel) and has
# bin/switch-to-configuration, which points /run/current-system at itself
# and records the goal in /run/cuedeploy-example/activations.
#
# Like NixOS's, it holds /run/nixos/switch-to-configuration.lock while it
# runs and refuses to run while another one holds it.
#
# Arguments come from the deployment's CUE (nix.args), as --argstr.
# failActivation and slowActivation name hosts (comma-separated) whose
# activation fails, or takes 30 s before it switches.
{ env ? "dev", servers ? "2", motd ? "Welcome to the forum", release ? "1"
, failActivation ? "", slowActivation ? "" }:
let
  count = builtins.fromJSON servers;
  names = [ "lb" ] ++ builtins.genList (i: "forum-${toString (i + 1)}") count;

  # The forum application: one derivation shared by every forum server, so a
  # batched build makes it once.
  forumApp = derivation {
    name = "forum-app-${release}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    args = [ "-c" ''
      mkdir -p $out/bin
      printf '#!/bin/sh\necho "forum release ${release}"\n' > $out/bin/forum
      chmod +x $out/bin/forum
    '' ];
  };

  mkSystem = name:
    let
      role = if name == "lb" then "lb" else "forum";
      config = if role == "lb"
        then "upstreams ${toString (builtins.tail names)}"
        else "app ${forumApp}\nmotd ${motd}";
      named = list: builtins.elem name (builtins.filter (x: x != "") (builtins.split "," list));
    in {
      config.system.build.toplevel = derivation {
        name = "nixos-system-${name}";
        system = builtins.currentSystem;
        builder = "/bin/sh";
        PATH = "/usr/bin:/bin";
        hostName = name;
        inherit role config env;
        failActivation = if named failActivation then "1" else "";
        slowActivation = if named slowActivation then "1" else "";
        args = [ "-c" ''
          mkdir -p $out/bin $out/etc
          echo "$hostName" > $out/etc/hostname
          printf 'env %s\nrole %s\n%s\n' "$env" "$role" "$config" > $out/etc/forum.conf
          cat > $out/bin/switch-to-configuration <<EOF
          #!/bin/sh
          # Stand-in for NixOS's switch-to-configuration (example system).
          goal="\$1"
          mkdir -p /run/cuedeploy-example /run/nixos
          exec 7>>/run/nixos/switch-to-configuration.lock
          flock -n 7 || { echo "Could not acquire lock" >&2; exit 1; }
          if [ -n "$slowActivation" ] && [ "\$goal" != dry-activate ]; then
            echo "waiting for a slow unit..." >&2; sleep 30
          fi
          case "\$goal" in
            switch|test) echo "activating the configuration..." >&2; echo "setting up /etc..."; ln -sfn $out /run/current-system ;;
            boot) echo "installing the boot loader..." >&2 ;;
            dry-activate) echo "would activate the configuration... (/run/current-system -> $out)" >&2 ;;
            *) echo "switch-to-configuration: unknown goal \$goal" >&2; exit 2 ;;
          esac
          case "\$goal" in
            switch|boot) # the boot menu lists the profile's generations
              (cd /nix/var/nix/profiles && ls -d system-*-link) > /run/cuedeploy-example/boot-entries 2>/dev/null ;;
          esac
          echo "\$goal $out" >> /run/cuedeploy-example/activations
          if [ -n "$failActivation" ] && [ "\$goal" != dry-activate ]; then
            echo "activation of $hostName failed: a unit did not start" >&2
            exit 1
          fi
          EOF
          sed -i 's/^          //' $out/bin/switch-to-configuration
          chmod +x $out/bin/switch-to-configuration
        '' ];
      };
    };
in {
  nixosConfigurations = builtins.listToAttrs
    (map (name: { inherit name; value = mkSystem name; }) names);
}
