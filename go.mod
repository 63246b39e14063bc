module cuedeploy.dev/cuedeploy

go 1.26.8
