;; A system for the backend contract suite, run against the guix stand-in.
(use-modules (gnu) (forum test-base))

(operating-system
  (host-name "contract-good")
  (timezone "Etc/UTC")
  (bootloader (bootloader-configuration
                (bootloader grub-bootloader)
                (targets '("/dev/vda"))))
  (file-systems (cons (file-system
                        (mount-point "/")
                        (device (file-system-label "root"))
                        (type "ext4"))
                      %base-file-systems))
  (services %base-services))
